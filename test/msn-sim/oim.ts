// Offline messages in the simulator: the Mail-Data document the
// notification server sends (at login, and as each OIM arrives), and the
// e-mail-like text the RSI service's GetMessage returns, as documented for
// MSNP13 (NINA wiki "Offline IM") and served by Escargot.

import { randomUUID } from 'node:crypto';
import type { Account, StoredOim } from './accounts.ts';
import { esc } from './soap.ts';

/** More waiting messages than this and the notification says "too-large" (the client asks GetMetadata). */
export const MAIL_DATA_LIMIT = 25;

function metadata(oim: StoredOim, justArrived: boolean): string {
  return (
    `<M><T>11</T><S>6</S>${justArrived ? '' : `<RT>${oim.sent.toISOString()}</RT>`}<RS>0</RS><SZ>${formatOim(oim).length}</SZ>` +
    `<E>${esc(oim.from)}</E><I>${oim.id}</I><F>${justArrived ? '.!!OIM' : '00000000-0000-0000-0000-000000000009'}</F>` +
    `<N>${esc(oim.fromFriendly)}</N></M>`
  );
}

/** The <MD> document listing `oims` (all waiting, or the one that just arrived). */
export function mailData(oims: readonly StoredOim[], justArrived = false, limit = MAIL_DATA_LIMIT): string {
  if (!justArrived && oims.length > limit) return 'too-large';
  const e = justArrived ? '' : '<E><I>0</I><IU>0</IU><O>0</O><OU>0</OU></E><Q><QTM>409600</QTM><QNM>204800</QNM></Q>';
  return `<MD>${e}${oims.map((o) => metadata(o, justArrived)).join('')}</MD>`;
}

/** The NS MSG body carrying Mail-Data. */
export function mailDataMessage(kind: 'initial' | 'new', md: string): string {
  const type = kind === 'initial' ? 'text/x-msmsgsinitialmdatanotification' : 'text/x-msmsgsoimnotification';
  return `MIME-Version: 1.0\r\nContent-Type: ${type}; charset=UTF-8\r\n\r\nMail-Data: ${md}\r\n`;
}

/** The stored message as GetMessage returns it: headers, blank line, base64 body. */
export function formatOim(oim: StoredOim): string {
  const date = oim.sent.toUTCString().replace('GMT', '+0000');
  const b64 = Buffer.from(oim.text, 'utf8').toString('base64').match(/.{1,76}/g) ?? [''];
  return [
    `From: ${oim.fromFriendly ? `${oim.fromFriendly} ` : ''}<${oim.from}>`,
    `To: ${oim.to}`,
    'Subject: ',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=UTF-8',
    'Content-Transfer-Encoding: base64',
    'X-OIM-Message-Type: OfflineMessage',
    `X-OIM-Run-Id: {${oim.runId}}`,
    `X-OIM-Sequence-Num: ${oim.sequence}`,
    `Message-ID: <OIM-${oim.id}@simulator>`,
    `Date: ${date}`,
    'Return-Path: ndr@oim.messenger.msn.com',
    '',
    ...b64,
  ].join('\r\n');
}

export function storeOim(to: Account, oim: Omit<StoredOim, 'id'>): StoredOim {
  const stored = { ...oim, id: randomUUID().toUpperCase() };
  to.oims.push(stored);
  return stored;
}
