// XEP-0054 vcard-temp. Users read and replace their own vCard; anyone may
// read a local user's vCard (as with Prosody, vCards are public). A user
// without one gets item-not-found, a JID with no account service-unavailable
// (RFC 6121 §8.5.1); nobody may write another's vCard. Limits: the whole
// vCard (limits.vcardMaxSize) and each PHOTO's decoded bytes
// (limits.vcardPhotoMaxSize), refused with policy-violation as Metronome
// (Prosody's fork) does. The avatar lives in PEP (avatar.ts, XEP-0398): a
// vCard read carries it as PHOTO, and a PHOTO set here is published there.
import type { Module, StanzaEvent } from '../host/host.ts';
import { sendResult } from '../host/iq-result.ts';
import { serialize, VcardStore } from '../storage/vcard.ts';
import { type Element, byteLength, firstChild } from '../xml/element.ts';
import { StanzaError } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';
import { UserAvatars } from './avatar.ts';

export const vcardModule: Module = (host) => {
  const server = host.server;
  const store = server.store(VcardStore);
  const limits = server.config.limits;
  host.features.add(NS.vcard);

  const get = async (event: StanzaEvent) => {
    const owner = event.to;
    if (owner.bare !== event.from.bare && !(await server.accounts.exists(owner.local))) {
      throw new StanzaError('service-unavailable');
    }
    const card = await server.store(UserAvatars).vcardFor(owner.bare, event.from);
    if (!card) throw new StanzaError('item-not-found');
    sendResult(event, card);
  };
  host.hook(`iq-get/self/${NS.vcard}:vCard`, get);
  host.hook(`iq-get/bare/${NS.vcard}:vCard`, get);

  host.hook(`iq-set/self/${NS.vcard}:vCard`, async (event) => {
    const card = firstChild(event.stanza)!;
    if (byteLength(serialize(card)) > limits.vcardMaxSize) {
      throw new StanzaError('policy-violation', `vCard larger than ${limits.vcardMaxSize} bytes`);
    }
    for (const photo of card.getChildren('PHOTO')) {
      // Garbage here would reach contacts' clients and the MSN avatar code as a picture.
      const binval = photo.getChildText('BINVAL');
      if (binval !== null && !BASE64.test(binval.replace(/\s+/g, ''))) {
        throw new StanzaError('bad-request', 'PHOTO BINVAL is not base64');
      }
      if (photoBytes(photo) > limits.vcardPhotoMaxSize) {
        throw new StanzaError('policy-violation', `PHOTO larger than ${limits.vcardPhotoMaxSize} bytes`);
      }
    }
    await store.set(event.to.bare, card);
    await server
      .store(UserAvatars)
      .fromVcard(event.to.bare, card)
      .catch((err) => host.log.warn('vCard PHOTO not published as avatar', { user: event.to.bare, error: String(err) }));
    sendResult(event);
  });

  host.hook(`iq-set/bare/${NS.vcard}:vCard`, async () => {
    throw new StanzaError('forbidden', 'only the owner may change a vCard');
  });
};

/** Standard base64 (RFC 4648 §4), padded, as XEP-0054 BINVAL is. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Decoded size of an inline PHOTO (BINVAL is base64, possibly line-wrapped). */
function photoBytes(photo: Element): number {
  const binval = photo.getChildText('BINVAL') ?? '';
  return Buffer.byteLength(binval.replace(/\s+/g, ''), 'base64');
}
