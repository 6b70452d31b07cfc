/**
 * MSNSLP: the SIP-like signalling (INVITE / 200 OK / 603 Decline / BYE)
 * carried as P2P data with footer 0. Bodies are "Key: value" lines ended by
 * an empty line and a NUL byte, which Content-Length counts.
 */
import { randomUUID } from 'node:crypto';
import { parseFields } from './mime.ts';

/** EUF-GUID of the display picture / emoticon application. */
export const EUF_GUID_DISPLAY_PICTURE = '{A4268EEC-FEC5-49E5-95C3-F126696BDBF6}';
export const SLP_SESSION_REQ = 'application/x-msnmsgr-sessionreqbody';
export const SLP_SESSION_CLOSE = 'application/x-msnmsgr-sessionclosebody';

export interface SlpMessage {
  /** "INVITE", "BYE", ... for requests; undefined for responses. */
  method?: string;
  /** Status code for responses (200, 603, ...). */
  status?: number;
  statusText?: string;
  /** Request target, e.g. "MSNMSGR:bob@example.com". */
  target?: string;
  /** Header names lowercased. */
  headers: Map<string, string>;
  /** Body fields, keys lowercased. */
  body: Map<string, string>;
}

export function newGuid(): string {
  return `{${randomUUID().toUpperCase()}}`;
}

export interface SlpBuild {
  /** Request line or status line without CRLF. */
  startLine: string;
  to: string;
  from: string;
  branch: string;
  cseq: number;
  callId: string;
  contentType: string;
  /** Body fields in order. */
  fields: [string, string | number][];
}

export function buildSlp(m: SlpBuild): Buffer {
  const bodyText = `${m.fields.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
  const body = Buffer.concat([Buffer.from(bodyText, 'utf8'), Buffer.from([0])]);
  const head =
    `${m.startLine}\r\n` +
    `To: <msnmsgr:${m.to}>\r\n` +
    `From: <msnmsgr:${m.from}>\r\n` +
    `Via: MSNSLP/1.0/TLP ;branch=${m.branch}\r\n` +
    `CSeq: ${m.cseq} \r\n` +
    `Call-ID: ${m.callId}\r\n` +
    'Max-Forwards: 0\r\n' +
    `Content-Type: ${m.contentType}\r\n` +
    `Content-Length: ${body.length}\r\n` +
    '\r\n';
  return Buffer.concat([Buffer.from(head, 'utf8'), body]);
}

export function parseSlp(data: Buffer): SlpMessage | undefined {
  const text = data.toString('utf8').replace(/\0+$/, '');
  const headEnd = text.indexOf('\r\n\r\n');
  if (headEnd < 0) return undefined;
  const lines = text.slice(0, headEnd).split('\r\n');
  const first = lines.shift() ?? '';
  const msg: SlpMessage = { headers: new Map(), body: parseFields(text.slice(headEnd + 4)) };
  const resp = /^MSNSLP\/1\.0\s+(\d{3})\s*(.*)$/.exec(first);
  if (resp) {
    msg.status = Number(resp[1]);
    msg.statusText = resp[2];
  } else {
    const req = /^([A-Z]+)\s+(\S+)\s+MSNSLP\/1\.0$/.exec(first.trim());
    if (!req) return undefined;
    msg.method = req[1];
    msg.target = req[2];
  }
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) msg.headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return msg;
}

/** "<msnmsgr:bob@example.com>" → "bob@example.com". */
export function slpAddress(value: string | undefined): string {
  return (value ?? '')
    .replace(/^<?msnmsgr:/i, '')
    .replace(/>$/, '')
    .trim()
    .toLowerCase();
}

/** The branch GUID out of "MSNSLP/1.0/TLP ;branch={...}". */
export function slpBranch(via: string | undefined): string {
  return /branch=(\{[^}]+\})/i.exec(via ?? '')?.[1] ?? newGuid();
}
