/**
 * Offline messages (MSNP13+). Sending: the OIM service's Store2 action,
 * which the first time answers with an AuthenticationFailed fault carrying a
 * LockKeyChallenge; the lock key is that challenge answered like a CHL, and
 * the Store is sent again with it. Receiving: the notification server lists
 * waiting messages in a Mail-Data document (at login, and as each one
 * arrives); the RSI service hands out each message (GetMessage) and forgets
 * them (DeleteMessages). A message is a small e-mail with a base64 body.
 */
import { randomUUID } from 'node:crypto';
import { type ChallengeKeys, msnp11Challenge } from '../challenge.ts';
import { MsnError, MsnProtocolError } from '../errors.ts';
import type { MsnTrace } from '../trace.ts';
import { postSoap } from './http.ts';
import { child, childText, envelope, esc, find, findAll, parseXml, soapFault, text } from './xml.ts';

export const OIM_NS = 'http://messenger.live.com/ws/2006/09/oim/';
export const RSI_NS = 'http://www.hotmail.msn.com/ws/2004/09/oim/rsi';
/** The application id and key the lock key is computed with (WLM 8.5). */
export const OIM_APP: ChallengeKeys = { productId: 'PROD0119GSJUC$18', productKey: 'ILTXC!4IXB5FB*PX' };

/** One waiting message as the Mail-Data document lists it. */
export interface OimHeader {
  id: string;
  from: string;
  nickname: string;
  /** When it was sent, if listed. */
  sent?: Date;
}

export interface OfflineMessage {
  id: string;
  from: string;
  nickname: string;
  text: string;
  sent: Date;
}

/** The mail-data header's value is "too-large" when more than ~25 messages wait: ask GetMetadata then. */
export function parseMailData(value: string): OimHeader[] | 'too-large' {
  if (value.trim() === 'too-large') return 'too-large';
  if (!value.includes('<MD')) return [];
  const doc = parseXml(value, 'Mail-Data');
  const out: OimHeader[] = [];
  for (const m of findAll(doc, 'M')) {
    const id = childText(m, 'I');
    const from = childText(m, 'E');
    if (!id || !from) continue;
    const rt = childText(m, 'RT');
    const sent = rt ? new Date(rt) : undefined;
    out.push({
      id,
      from: from.toLowerCase(),
      nickname: decodeMimeWord(childText(m, 'N') ?? '') || from,
      sent: sent && !Number.isNaN(sent.getTime()) ? sent : undefined,
    });
  }
  return out;
}

/** "=?utf-8?B?...?=" (or Q) → text; anything else unchanged. */
export function decodeMimeWord(s: string): string {
  return s.trim().replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g, (_, charset: string, enc: string, data: string) => {
    const bytes =
      enc.toUpperCase() === 'B'
        ? Buffer.from(data, 'base64')
        : Buffer.from(
            data.replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g, (__, h: string) => String.fromCharCode(Number.parseInt(h, 16))),
            'latin1',
          );
    return /^utf-?8$/i.test(charset) ? bytes.toString('utf8') : bytes.toString('latin1');
  });
}

export function encodeMimeWord(s: string): string {
  return `=?utf-8?B?${Buffer.from(s, 'utf8').toString('base64')}?=`;
}

/** Splits an OIM as GetMessage returns it (headers, blank line, base64 body). */
export function parseOimMessage(id: string, raw: string): OfflineMessage {
  const text = raw.replace(/\r\n/g, '\n');
  const split = text.indexOf('\n\n');
  if (split < 0) throw new MsnProtocolError(`offline message ${id} has no body`);
  const headers = new Map<string, string>();
  let last = '';
  for (const line of text.slice(0, split).split('\n')) {
    if (/^[ \t]/.test(line) && last) {
      headers.set(last, `${headers.get(last) ?? ''} ${line.trim()}`);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    last = line.slice(0, colon).trim().toLowerCase();
    headers.set(last, line.slice(colon + 1).trim());
  }
  const fromHeader = headers.get('from') ?? '';
  const addr = /<([^>]+)>/.exec(fromHeader)?.[1] ?? fromHeader.trim();
  const nickPart = fromHeader.replace(/<[^>]*>/, '').trim();
  const body = text.slice(split + 2).replace(/\s+/g, '');
  const encoding = (headers.get('content-transfer-encoding') ?? 'base64').toLowerCase();
  const decoded = encoding === 'base64' ? Buffer.from(body, 'base64').toString('utf8') : text.slice(split + 2);
  const date = new Date(headers.get('date') ?? '');
  return {
    id,
    from: addr.toLowerCase(),
    nickname: decodeMimeWord(nickPart) || addr,
    text: decoded,
    sent: Number.isNaN(date.getTime()) ? new Date() : date,
  };
}

export interface OimContext {
  baseUrl: string;
  timeout: number;
  trace?: MsnTrace;
}

/** "t=xxx&p=yyy" → { t, p } (the RSI service wants them apart). */
function splitTicket(ticket: string): { t: string; p: string } {
  const params = new URLSearchParams(ticket.replace(/&amp;/g, '&'));
  return { t: params.get('t') ?? ticket.replace(/^t=/, ''), p: params.get('p') ?? '' };
}

export interface StoreOptions {
  /** The passport ticket for the OIM service. */
  ticket: string;
  from: string;
  fromNickname: string;
  to: string;
  text: string;
  /** Same for every part of one run; each part gets the next sequence number. */
  runId: string;
  sequence: number;
  msnpVersion: string;
  /** Lock key from an earlier challenge, when known. */
  lockKey?: string;
}

/** Stores one offline message; resolves with the lock key that worked (reuse it for the next one). */
export async function storeOim(ctx: OimContext, o: StoreOptions): Promise<string> {
  let lockKey = o.lockKey ?? '';
  for (let attempt = 0; attempt < 2; attempt++) {
    const reply = await postSoap({
      url: `${ctx.baseUrl}/OimWS/oim.asmx`,
      action: `${OIM_NS}Store2`,
      body: storeBody(o, lockKey),
      timeout: ctx.timeout,
      trace: ctx.trace,
    });
    const doc = parseXml(reply.body, 'OIM Store2');
    const fault = soapFault(doc);
    if (!fault) {
      if (reply.status !== 200) throw new MsnProtocolError(`OIM Store2 answered HTTP ${reply.status}`);
      return lockKey;
    }
    const challenge = fault.detail ? text(fault.detail, 'LockKeyChallenge') : undefined;
    if (fault.code === 'AuthenticationFailed' && challenge && attempt === 0) {
      lockKey = msnp11Challenge(challenge, OIM_APP);
      continue;
    }
    // SystemUnavailable: the contact cannot get offline messages (e.g. blocked us).
    throw new MsnError(fault.code === 'SystemUnavailable' ? 217 : 500, `OIM Store2: ${fault.code} ${fault.text}`.trim(), 'OIM');
  }
  throw new MsnProtocolError('OIM Store2 refused the lock key');
}

function storeBody(o: StoreOptions, lockKey: string): string {
  const b64 = Buffer.from(o.text, 'utf8').toString('base64');
  const lines = b64.match(/.{1,76}/g) ?? [''];
  const content =
    'MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n' +
    `X-OIM-Message-Type: OfflineMessage\r\nX-OIM-Run-Id: {${o.runId}}\r\nX-OIM-Sequence-Num: ${o.sequence}\r\n\r\n${lines.join('\r\n')}`;
  const header =
    `<From memberName="${esc(o.from)}" friendlyName="${esc(encodeMimeWord(o.fromNickname))}" xml:lang="en-US" proxy="MSNMSGR" ` +
    `xmlns="${OIM_NS}" msnpVer="${esc(o.msnpVersion)}" buildVer="8.5.1302"/>` +
    `<To memberName="${esc(o.to)}" xmlns="${OIM_NS}"/>` +
    `<Ticket passport="${esc(o.ticket)}" appid="${esc(OIM_APP.productId)}" lockkey="${esc(lockKey)}" xmlns="${OIM_NS}"/>` +
    '<Sequence xmlns="http://schemas.xmlsoap.org/ws/2003/03/rm"><Identifier xmlns="http://schemas.xmlsoap.org/ws/2002/07/utility">http://messenger.msn.com</Identifier>' +
    `<MessageNumber>${o.sequence}</MessageNumber></Sequence>`;
  const body = `<MessageType xmlns="${OIM_NS}">text</MessageType><Content xmlns="${OIM_NS}">${esc(content)}</Content>`;
  return envelope(header, body);
}

export function newRunId(): string {
  return randomUUID().toUpperCase();
}

async function rsi(ctx: OimContext, ticket: string, action: string, inner: string) {
  const { t, p } = splitTicket(ticket);
  const reply = await postSoap({
    url: `${ctx.baseUrl}/rsi/rsi.asmx`,
    action: `${RSI_NS}/${action}`,
    body: envelope(
      `<PassportCookie xmlns="${RSI_NS}"><t>${esc(t)}</t><p>${esc(p)}</p></PassportCookie>`,
      `<${action} xmlns="${RSI_NS}">${inner}</${action}>`,
    ),
    timeout: ctx.timeout,
    trace: ctx.trace,
  });
  const doc = parseXml(reply.body, `RSI ${action}`);
  const fault = soapFault(doc);
  if (fault) throw new MsnError(500, `RSI ${action}: ${fault.code} ${fault.text}`.trim(), 'OIM');
  if (reply.status !== 200) throw new MsnProtocolError(`RSI ${action} answered HTTP ${reply.status}`);
  return doc;
}

/** The full Mail-Data document (when the notification said "too-large"). */
export async function getMetadata(ctx: OimContext, ticket: string): Promise<OimHeader[]> {
  const doc = await rsi(ctx, ticket, 'GetMetadata', '');
  const md = find(doc, 'MD');
  if (!md) return [];
  const parsed = parseMailData(md.toString());
  return parsed === 'too-large' ? [] : parsed;
}

export async function getMessage(ctx: OimContext, ticket: string, id: string): Promise<OfflineMessage> {
  const doc = await rsi(ctx, ticket, 'GetMessage', `<messageId>${esc(id)}</messageId><alsoMarkAsRead>false</alsoMarkAsRead>`);
  const result = find(doc, 'GetMessageResult');
  if (!result) throw new MsnProtocolError(`RSI GetMessage gave no message ${id}`);
  return parseOimMessage(id, result.getText());
}

export async function deleteMessages(ctx: OimContext, ticket: string, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await rsi(ctx, ticket, 'DeleteMessages', `<messageIds>${ids.map((i) => `<messageId>${esc(i)}</messageId>`).join('')}</messageIds>`);
}

export { child };
