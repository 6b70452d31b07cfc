// One occupant of a room: a nickname held by one real (bare) JID, joined
// from one or more of its resources (XEP-0045 multi-session: every session
// of the same user may share the nick). The presence shown for the
// occupant is that of its most recently active session.
import type { Role } from '../storage/muc-rooms.ts';
import type { Element } from '../xml/element.ts';

export class Occupant {
  /** Real full JID → that session's last presence (the MUC payload stripped). Most recent last. */
  readonly sessions = new Map<string, Element>();

  constructor(
    public nick: string,
    /** The real bare JID. */
    readonly bare: string,
    public role: Role,
    /** XEP-0421 occupant id: stable for this user in this room. */
    readonly id: string,
  ) {}

  /** The real full JID of the most recently active session. */
  get primary(): string {
    let last = '';
    for (const jid of this.sessions.keys()) last = jid;
    return last;
  }

  get presence(): Element {
    return this.sessions.get(this.primary)!;
  }

  /** Records a session's presence and makes it the most recent one. */
  setSession(jid: string, presence: Element): void {
    this.sessions.delete(jid);
    this.sessions.set(jid, presence);
  }
}
