/**
 * MSNP command framing.
 *
 * Every command is one CRLF-terminated line of space-separated tokens. A few
 * commands ("payload commands": MSG, UUX, UBX, GCF, NOT, QRY, ...) carry a
 * body whose length in BYTES is the last token of the line; the body follows
 * the CRLF directly and is not itself terminated. TCP may split or merge
 * commands arbitrarily, so the parser keeps a byte buffer and only emits a
 * command once the whole line and the whole body are present.
 */

/** One parsed MSNP command. `args` holds every token after the name (the TrID too, when there is one). */
export interface MsnCommand {
  name: string;
  args: string[];
  /** Body bytes of a payload command; undefined for plain commands. */
  payload?: Buffer;
}

/**
 * Commands a server sends WITH a payload. QRY is deliberately absent: the
 * client's QRY carries a body but the server's answer ("QRY 7") does not, and
 * reading "7" as a length would swallow the next commands.
 */
export const SERVER_PAYLOAD_COMMANDS: ReadonlySet<string> = new Set([
  'MSG',
  'UBX',
  'UUX',
  'GCF',
  'NOT',
  'IPG',
  'ADL',
  'RML',
  'UBN',
  'UUN',
  'FQY',
  'NFY',
  'SDG',
]);

/**
 * Payload commands whose replies carry no payload: "ADL 5 OK", "RML 6 OK",
 * "UUN 7 OK". A body follows only when the last token is a byte count.
 */
const OPTIONAL_PAYLOAD: ReadonlySet<string> = new Set(['ADL', 'RML', 'UUN', 'FQY']);

const CRLF = Buffer.from('\r\n');

/** The transaction id of a reply, when its first argument is numeric. */
export function trIdOf(cmd: MsnCommand): number | undefined {
  const first = cmd.args[0];
  if (first === undefined || !/^\d+$/.test(first)) return undefined;
  return Number(first);
}

/**
 * Serialises a command. When `payload` is given (even empty) its byte length
 * is appended as the last token, as every payload command requires.
 */
export function encodeCommand(
  name: string,
  args: readonly (string | number)[],
  payload?: Buffer | string,
): Buffer {
  const tokens = [name, ...args.map(String)];
  if (payload === undefined) return Buffer.from(`${tokens.join(' ')}\r\n`, 'utf8');
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  tokens.push(String(body.length));
  return Buffer.concat([Buffer.from(`${tokens.join(' ')}\r\n`, 'utf8'), body]);
}

/** Splits one command line into name and arguments. Empty tokens (double spaces) are dropped. */
export function parseLine(line: string): { name: string; args: string[] } {
  const tokens = line.split(' ').filter((t) => t.length > 0);
  return { name: tokens[0] ?? '', args: tokens.slice(1) };
}

/** A limit on a single payload so a corrupt length cannot make us buffer gigabytes. */
const MAX_PAYLOAD = 16 * 1024 * 1024;

/**
 * Incremental parser: feed it chunks as they arrive, get whole commands back.
 * Throws on a payload length that is not a number, since the stream cannot be
 * resynchronised after that.
 */
export class CommandParser {
  private buf: Buffer = Buffer.alloc(0);
  private readonly payloadCommands: ReadonlySet<string>;

  constructor(payloadCommands: ReadonlySet<string> = SERVER_PAYLOAD_COMMANDS) {
    this.payloadCommands = payloadCommands;
  }

  /** Bytes received but not yet part of a complete command. */
  get pending(): number {
    return this.buf.length;
  }

  push(chunk: Buffer): MsnCommand[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: MsnCommand[] = [];
    for (;;) {
      const eol = this.buf.indexOf(CRLF);
      if (eol < 0) break;
      const line = this.buf.subarray(0, eol).toString('utf8');
      const { name, args } = parseLine(line);
      if (name === '') {
        // Stray blank line: skip it rather than stall.
        this.buf = this.buf.subarray(eol + 2);
        continue;
      }
      const lastToken = args[args.length - 1];
      const optionalAbsent = OPTIONAL_PAYLOAD.has(name) && (lastToken === undefined || !/^\d+$/.test(lastToken));
      if (this.payloadCommands.has(name) && !optionalAbsent) {
        const lenToken = lastToken;
        const len = lenToken !== undefined && /^\d+$/.test(lenToken) ? Number(lenToken) : Number.NaN;
        if (!Number.isFinite(len) || len > MAX_PAYLOAD) {
          throw new Error(`bad payload length in "${line}"`);
        }
        if (this.buf.length < eol + 2 + len) break; // wait for the rest of the body
        const payload = Buffer.from(this.buf.subarray(eol + 2, eol + 2 + len));
        this.buf = this.buf.subarray(eol + 2 + len);
        out.push({ name, args: args.slice(0, -1), payload });
      } else {
        this.buf = this.buf.subarray(eol + 2);
        out.push({ name, args });
      }
    }
    if (this.buf.length === 0) this.buf = Buffer.alloc(0);
    return out;
  }
}
