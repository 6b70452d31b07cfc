// The transport inside jabberfly: its own users' rosters and vCards are in
// this process, so they are read and written through the stores (roster
// pushes reach every interested resource; no client action at all). Users
// of other servers are reached over stanzas like a component reaches its
// server's users.
import type { Jid } from '../../jid/jid.ts';
import { updateRoster } from '../../modules/roster.ts';
import type { Roster } from '../../storage/roster.ts';
import { UserAvatars } from '../../modules/avatar.ts';
import { type Element, el } from '../../xml/element.ts';
import type { MsnGateway } from './gateway.ts';
import type { UserServer } from './user-server.ts';

export class LocalUserServer implements UserServer {
  constructor(
    private readonly gw: MsnGateway,
    private readonly others: UserServer,
  ) {}

  managesRoster(user: Jid): boolean {
    return this.gw.isLocalUser(user) || this.others.managesRoster(user);
  }

  async editRoster(user: Jid, edit: (roster: Roster) => void): Promise<void> {
    if (!this.gw.isLocalUser(user)) return this.others.editRoster(user, edit);
    // A deleted account gets no roster back.
    if (!(await this.gw.server.accounts.exists(user.local))) return;
    await updateRoster(this.gw.server, user.bare, edit);
  }

  requestPresence(user: Jid): void {
    if (!this.gw.isLocalUser(user)) return this.others.requestPresence(user);
    // Resources already online announce themselves to the new contact.
    const { server } = this.gw;
    for (const s of server.sessions.available(user.bare)) {
      if (!s.presence) continue;
      const p = el('presence', { from: s.jid.toString(), to: this.gw.domain });
      for (const c of s.presence.children) if (typeof c !== 'string') p.cnode(c);
      server.router.route(p);
    }
  }

  ownVcard(user: Jid): Promise<Element | undefined> {
    if (!this.gw.isLocalUser(user)) return this.others.ownVcard(user);
    // The vCard with the PEP avatar as PHOTO and the PEP nick as NICKNAME (XEP-0398, modules/avatar.ts).
    return this.gw.server.store(UserAvatars).profile(user.bare);
  }

  reset(): void {
    this.others.reset();
  }
}
