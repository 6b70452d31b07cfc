/**
 * The MIME-like envelope of every MSG payload: "Name: value" header lines,
 * a blank line, then the body. Bodies can be binary (P2P), so the split is
 * done on bytes and the body stays a Buffer.
 */

export interface MimeMessage {
  /** Header names as sent; look them up with getHeader (case-insensitive). */
  headers: [string, string][];
  body: Buffer;
}

const SEP = Buffer.from('\r\n\r\n');

export function parseMime(payload: Buffer): MimeMessage {
  const end = payload.indexOf(SEP);
  const headText = end < 0 ? payload.toString('utf8') : payload.subarray(0, end).toString('utf8');
  const body = end < 0 ? Buffer.alloc(0) : payload.subarray(end + 4);
  const headers: [string, string][] = [];
  for (const line of headText.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    headers.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
  }
  return { headers, body };
}

export function getHeader(msg: MimeMessage, name: string): string | undefined {
  const lower = name.toLowerCase();
  return msg.headers.find(([k]) => k.toLowerCase() === lower)?.[1];
}

/** The bare media type ("text/plain") without parameters, lowercased. */
export function contentType(msg: MimeMessage): string {
  return (getHeader(msg, 'Content-Type') ?? '').split(';')[0]!.trim().toLowerCase();
}

export function buildMime(headers: readonly [string, string][], body: Buffer | string = ''): Buffer {
  const head = headers.map(([k, v]) => `${k}: ${v}\r\n`).join('');
  return Buffer.concat([
    Buffer.from(`${head}\r\n`, 'utf8'),
    typeof body === 'string' ? Buffer.from(body, 'utf8') : body,
  ]);
}

/** Parses "key: value" lines of a text body (datacast, SLP bodies). */
export function parseFields(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    out.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return out;
}
