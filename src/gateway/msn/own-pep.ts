// The user's own PEP profile reaching MSN: publishing an XEP-0084 avatar or
// an XEP-0172 nick (from any client) updates the MSN display picture and
// friendly name, as a vCard change does. The session reads the profile
// through its UserServer (in-process: the vCard with the PEP avatar and nick,
// modules/avatar.ts), so this only says when to read it again.
import { Pep } from '../../modules/pep.ts';
import { NS } from '../../xml/namespaces.ts';
import type { MsnGateway } from './gateway.ts';

const PROFILE_NODES = new Set<string>([NS.avatarMetadata, NS.nick]);

export function followOwnPep(gw: MsnGateway): void {
  gw.server.store(Pep).onNotification((n) => {
    if (!PROFILE_NODES.has(n.node.name)) return;
    gw.sessions.get(n.service)?.ownProfileChanged();
  });
}
