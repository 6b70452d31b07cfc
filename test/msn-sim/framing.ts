// Byte-exact MSNP framing.
//
// MSNP is line based ("CMD trid args\r\n") except for payload commands, whose
// last (or, for a few, a fixed) argument is the payload length in BYTES. The
// payload follows the line directly, with no trailing CRLF of its own, and can
// be binary (P2P messages). TCP may split or merge commands arbitrarily, so the
// decoder works on a byte buffer and only decodes the command line as UTF-8.

/** One decoded command. `payload` is set only for payload commands. */
export interface Frame {
  /** The command name (or a 3-digit error code). */
  name: string;
  /** All space-separated tokens after the name. */
  args: string[];
  /** The command line as sent, without CRLF. */
  line: string;
  payload?: Buffer;
}

/**
 * Decides whether a command line carries a payload, and how long it is.
 * Returns undefined for plain commands, or NaN when the line is malformed.
 */
export type PayloadLengthRule = (name: string, args: string[]) => number | undefined;

function lastArgLength(args: string[]): number {
  const last = args[args.length - 1];
  if (last === undefined || !/^\d+$/.test(last)) return Number.NaN;
  return Number(last);
}

/** Client-to-server payload commands (NS: UUX, QRY, and from MSNP13 ADL, RML; SB: MSG). */
export const clientPayloadRule: PayloadLengthRule = (name, args) => {
  switch (name) {
    case 'MSG':
    case 'UUX':
    case 'QRY':
    case 'ADL':
    case 'RML':
      return lastArgLength(args);
    default:
      return undefined;
  }
};

/** Server-to-client payload commands, used by the raw test client. */
export const serverPayloadRule: PayloadLengthRule = (name, args) => {
  switch (name) {
    case 'MSG':
    case 'UBX':
    case 'GCF':
    case 'IPG':
      return lastArgLength(args);
    case 'NOT':
      return lastArgLength(args.slice(0, 1));
    case 'UUX':
      // The server's UUX reply is "UUX trid 0": an empty payload.
      return args.length >= 2 ? lastArgLength(args) : undefined;
    case 'ADL':
    case 'RML':
      // "ADL trid OK" answers the client; "ADL 0 length" pushes a list change.
      return args[args.length - 1] === 'OK' ? undefined : lastArgLength(args);
    default:
      return undefined;
  }
};

/** Raised when the peer sends something that cannot be framed. */
export class FramingError extends Error {}

/** Incremental decoder: feed chunks with push(), get whole frames back. */
export class FrameDecoder {
  private buffer: Buffer = Buffer.alloc(0);
  private pendingLine: { name: string; args: string[]; line: string; length: number } | null = null;

  constructor(
    private readonly rule: PayloadLengthRule,
    private readonly maxLineBytes = 8192,
    private readonly maxPayloadBytes = 1024 * 1024,
  ) {}

  push(chunk: Buffer): Frame[] {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const frames: Frame[] = [];
    for (;;) {
      if (this.pendingLine) {
        const { length } = this.pendingLine;
        if (this.buffer.length < length) break;
        const payload = Buffer.from(this.buffer.subarray(0, length));
        this.buffer = this.buffer.subarray(length);
        const { name, args, line } = this.pendingLine;
        this.pendingLine = null;
        frames.push({ name, args, line, payload });
        continue;
      }
      const eol = this.buffer.indexOf('\r\n');
      if (eol < 0) {
        if (this.buffer.length > this.maxLineBytes) throw new FramingError('command line too long');
        break;
      }
      const line = this.buffer.subarray(0, eol).toString('utf8');
      this.buffer = this.buffer.subarray(eol + 2);
      if (line.length === 0) continue; // stray CRLF: tolerated, carries nothing
      const tokens = line.split(' ');
      const name = tokens[0]!;
      const args = tokens.slice(1);
      const length = this.rule(name, args);
      if (length === undefined) {
        frames.push({ name, args, line });
        continue;
      }
      if (!Number.isFinite(length) || length > this.maxPayloadBytes) {
        throw new FramingError(`bad payload length in: ${line}`);
      }
      this.pendingLine = { name, args, line, length };
    }
    return frames;
  }
}

/** Builds "<line>\r\n" (and appends the payload when given) as bytes. */
export function encodeCommand(line: string, payload?: Buffer | string): Buffer {
  const head = Buffer.from(`${line}\r\n`, 'utf8');
  if (payload === undefined) return head;
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  return Buffer.concat([head, body]);
}

/** Byte length of a UTF-8 string: what MSNP length fields count. */
export function byteLength(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/**
 * MSNP URL-encoding for friendly names and group names: like
 * encodeURIComponent (spaces become %20), which is what MSN clients sent.
 */
export function msnEncode(text: string): string {
  return encodeURIComponent(text);
}

/** Lenient decoding of URL-encoded tokens; malformed escapes are kept as-is. */
export function msnDecode(token: string): string {
  try {
    return decodeURIComponent(token);
  } catch {
    return token;
  }
}
