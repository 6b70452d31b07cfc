// vCards of contact JIDs: NICKNAME is the contact's MSN friendly name and
// PHOTO its display picture, fetched over MSNSLP and cached as PNG. Asked
// while the user's MSN login is under way, the answer waits for the login.
import type { StanzaEvent } from '../../host/host.ts';
import { sendResult } from '../../host/iq-result.ts';
import { el } from '../../xml/element.ts';
import { StanzaError } from '../../xml/errors.ts';
import { NS } from '../../xml/namespaces.ts';
import type { MsnGateway } from './gateway.ts';

export async function contactVcard(gw: MsnGateway, e: StanzaEvent): Promise<void> {
  const email = gw.emailOf(e.to);
  if (!email) throw new StanzaError('item-not-found');
  // Right after the user comes online the MSN login may still be running:
  // the request waits for it (msn.loginWait) instead of failing.
  const s = await gw.whenOnline(e.from.toBare());
  if (!s) throw new StanzaError('registration-required', 'log in to the MSN transport first');
  const contact = s.msn.getContact(email);
  if (!contact) throw new StanzaError('item-not-found', 'not on your MSN contact list');
  const avatar = await s.contactAvatar(email).catch((err: Error) => {
    gw.host.log.info('contact avatar unavailable', { contact: email, error: err.message });
    return undefined;
  });
  sendResult(
    e,
    el(
      'vCard',
      { xmlns: NS.vcard },
      el('NICKNAME', null, contact.nickname || email),
      el('EMAIL', null, el('INTERNET'), el('USERID', null, email)),
      avatar ? el('PHOTO', null, el('TYPE', null, 'image/png'), el('BINVAL', null, avatar.png.toString('base64'))) : null,
    ),
  );
}
