// XMPP rooms and MSN contacts: an MSN user has no XMPP client and cannot
// join a room at conference.<domain> (or anywhere). A direct invitation
// (XEP-0249) sent to a contact's JID is answered with a clear error rather
// than dropped (it carries no text the transport could pass on); the MUC
// service refuses mediated invitations to gateway contacts the same way.
// For a group chat with MSN contacts, the transport's own rooms
// (`name@msn.<domain>`, groupchat.ts) are the way.
import type { Module } from '../../host/host.ts';
import { StanzaError } from '../../xml/errors.ts';
import { NS } from '../../xml/namespaces.ts';
import { localToEmail } from './address.ts';

export const msnRoomInvitations: Module = (host) => {
  // Above the gateway's own message handling.
  host.hook(
    'message/bare',
    (e) => {
      if (e.stanza.attrs.type === 'error' || !e.stanza.getChild('x', NS.conference)) return false;
      if (localToEmail(e.to.local) === null) return false;
      throw new StanzaError(
        'feature-not-implemented',
        `MSN contacts cannot join XMPP rooms; for a group chat with them, join a room at ${host.name} (e.g. friends@${host.name}/yournick) and invite them there`,
      );
    },
    1,
  );
};
