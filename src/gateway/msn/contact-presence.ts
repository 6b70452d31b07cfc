// A contact's MSN state as an XMPP presence from its contact JID: show from
// the status code, the personal message as status, the nickname as XEP-0172
// nick, and the avatar hash (XEP-0153) once the picture is known.
import type { MsnContact } from '../../msnp/index.ts';
import { type Element, el } from '../../xml/element.ts';
import { NS } from '../../xml/namespaces.ts';
import { MSN_STATUS_TEXT, msnToShow } from './status-map.ts';

export function contactPresence(from: string, to: string, c: MsnContact, photoHash: string | undefined): Element {
  const show = msnToShow(c.status);
  if (show === 'unavailable') return el('presence', { from, to, type: 'unavailable' });
  const status = c.personalMessage || MSN_STATUS_TEXT[c.status];
  return el(
    'presence',
    { from, to },
    show ? el('show', null, show) : null,
    status ? el('status', null, status) : null,
    c.nickname ? el('nick', { xmlns: NS.nick }, c.nickname) : null,
    photoHash !== undefined
      ? el(
          'x',
          { xmlns: NS.vcardUpdate },
          el('photo', null, photoHash),
          c.nickname ? el('nickname', null, c.nickname) : null,
        )
      : null,
  );
}
