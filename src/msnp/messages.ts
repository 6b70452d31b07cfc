/**
 * Switchboard message payloads: text (text/plain + X-MMS-IM-Format), typing
 * notifications (text/x-msmsgscontrol), datacasts (nudges etc.), and the
 * splitting of long texts into MSG payloads that stay under the limit the
 * official servers enforce.
 */
import { buildMime, contentType, getHeader, type MimeMessage, parseFields } from './mime.ts';

/** Largest MSG payload (headers + body, in bytes) the MSN servers accept. */
export const MAX_MSG_PAYLOAD = 1664;

/** Font and colour of a text message, as carried in X-MMS-IM-Format. */
export interface TextFormat {
  /** Font name, e.g. "Segoe UI". */
  font: string;
  /** Effects: any of B (bold), I (italic), U (underline), S (strike). */
  effects: string;
  /** Colour as RRGGBB hex (converted from MSN's BBGGRR). */
  color: string;
  charset: string;
  pitchFamily: string;
  /** True when RL=1 (right-to-left). */
  rightToLeft: boolean;
}

export const DEFAULT_FORMAT: TextFormat = {
  font: 'Segoe UI',
  effects: '',
  color: '000000',
  charset: '0',
  pitchFamily: '22',
  rightToLeft: false,
};

/** MSN writes colours as BBGGRR with leading zeros dropped; this swaps to/from RRGGBB. */
function swapColor(hex: string): string {
  const six = hex
    .replace(/[^0-9a-fA-F]/g, '')
    .padStart(6, '0')
    .slice(-6);
  return `${six.slice(4, 6)}${six.slice(2, 4)}${six.slice(0, 2)}`.toLowerCase();
}

export function formatToHeader(f: TextFormat): string {
  const co = swapColor(f.color).replace(/^0+(?=.)/, '');
  return `FN=${encodeURIComponent(f.font)}; EF=${f.effects}; CO=${co}; CS=${f.charset}; PF=${f.pitchFamily}${f.rightToLeft ? '; RL=1' : ''}`;
}

export function parseFormatHeader(value: string | undefined): TextFormat {
  const f: TextFormat = { ...DEFAULT_FORMAT };
  if (!value) return f;
  for (const part of value.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const k = part.slice(0, eq).trim().toUpperCase();
    const v = part.slice(eq + 1).trim();
    if (k === 'FN') {
      try {
        f.font = decodeURIComponent(v);
      } catch {
        f.font = v;
      }
    } else if (k === 'EF') f.effects = v;
    else if (k === 'CO') f.color = swapColor(v || '0');
    else if (k === 'CS') f.charset = v;
    else if (k === 'PF') f.pitchFamily = v;
    else if (k === 'RL') f.rightToLeft = v === '1';
  }
  return f;
}

function textHeaders(format: TextFormat): [string, string][] {
  return [
    ['MIME-Version', '1.0'],
    ['Content-Type', 'text/plain; charset=UTF-8'],
    ['X-MMS-IM-Format', formatToHeader(format)],
  ];
}

export function buildTextMessage(text: string, format: TextFormat = DEFAULT_FORMAT): Buffer {
  return buildMime(textHeaders(format), text);
}

/**
 * Splits a text into pieces whose whole MSG payload fits MAX_MSG_PAYLOAD.
 * Cuts only between code points, so no UTF-8 sequence or surrogate pair is
 * broken; prefers to cut after a newline or space when one is near.
 */
export function splitText(
  text: string,
  format: TextFormat = DEFAULT_FORMAT,
  limit = MAX_MSG_PAYLOAD,
): string[] {
  const headerBytes = buildMime(textHeaders(format)).length;
  const room = limit - headerBytes;
  if (room <= 0) throw new Error('message headers exceed the payload limit');
  if (Buffer.byteLength(text, 'utf8') <= room) return [text];
  const parts: string[] = [];
  let current = '';
  let currentBytes = 0;
  let lastBreak = -1; // index in `current` just after a space/newline
  for (const ch of text) {
    const b = Buffer.byteLength(ch, 'utf8');
    if (currentBytes + b > room) {
      // Cut at a recent word break if it keeps at least half the piece.
      if (lastBreak > current.length / 2) {
        parts.push(current.slice(0, lastBreak));
        current = current.slice(lastBreak);
      } else {
        parts.push(current);
        current = '';
      }
      currentBytes = Buffer.byteLength(current, 'utf8');
      lastBreak = -1;
    }
    current += ch;
    currentBytes += b;
    if (ch === ' ' || ch === '\n') lastBreak = current.length;
  }
  if (current.length > 0) parts.push(current);
  return parts;
}

export function buildTypingMessage(email: string): Buffer {
  return buildMime(
    [
      ['MIME-Version', '1.0'],
      ['Content-Type', 'text/x-msmsgscontrol'],
      ['TypingUser', email],
    ],
    '\r\n',
  );
}

/** Datacast ids: 1 nudge, 2 wink, 3 voice clip, 4 action message. */
export function buildDatacast(id: number, data?: string): Buffer {
  return buildMime(
    [
      ['MIME-Version', '1.0'],
      ['Content-Type', 'text/x-msnmsgr-datacast'],
    ],
    `ID: ${id}\r\n${data !== undefined ? `Data: ${data}\r\n` : ''}\r\n`,
  );
}

/** What a switchboard MSG turned out to be. */
export type ParsedPayload =
  | { kind: 'text'; text: string; format: TextFormat }
  | { kind: 'typing'; user: string }
  | { kind: 'datacast'; id: number; data?: string }
  | { kind: 'p2p'; dest: string; body: Buffer }
  | { kind: 'other'; contentType: string };

export function classifyMessage(msg: MimeMessage): ParsedPayload {
  const type = contentType(msg);
  if (type === 'text/plain') {
    return {
      kind: 'text',
      text: msg.body.toString('utf8'),
      format: parseFormatHeader(getHeader(msg, 'X-MMS-IM-Format')),
    };
  }
  if (type === 'text/x-msmsgscontrol') {
    const user = getHeader(msg, 'TypingUser');
    if (user) return { kind: 'typing', user };
  }
  if (type === 'text/x-msnmsgr-datacast') {
    const fields = parseFields(msg.body.toString('utf8'));
    const id = Number(fields.get('id'));
    if (Number.isFinite(id)) return { kind: 'datacast', id, data: fields.get('data') };
  }
  if (type === 'application/x-msnmsgrp2p') {
    return { kind: 'p2p', dest: getHeader(msg, 'P2P-Dest') ?? '', body: msg.body };
  }
  return { kind: 'other', contentType: type };
}
