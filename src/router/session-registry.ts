// Bound client sessions by bare JID and resource. The router delivers to
// full JIDs through it; modules ask it for a user's resources.
import type { ClientSession } from '../host/session.ts';
import type { Jid } from '../jid/jid.ts';

export class SessionRegistry {
  private readonly byBare = new Map<string, Map<string, ClientSession>>();
  private total = 0;

  /** Registers a bound session; returns the session it replaces, if any. */
  add(session: ClientSession): ClientSession | undefined {
    const bare = session.jid.bare;
    let res = this.byBare.get(bare);
    if (!res) {
      res = new Map();
      this.byBare.set(bare, res);
    }
    const old = res.get(session.jid.resource);
    if (!old) this.total++;
    res.set(session.jid.resource, session);
    return old;
  }

  /** Removes the session if it is still the one registered for its JID. */
  remove(session: ClientSession): boolean {
    const res = this.byBare.get(session.jid.bare);
    if (!res || res.get(session.jid.resource) !== session) return false;
    res.delete(session.jid.resource);
    this.total--;
    if (res.size === 0) this.byBare.delete(session.jid.bare);
    return true;
  }

  get(full: Jid): ClientSession | undefined {
    return this.byBare.get(full.bare)?.get(full.resource);
  }

  /** Every bound resource of a bare JID. */
  resources(bare: string): ClientSession[] {
    const res = this.byBare.get(bare);
    return res ? [...res.values()] : [];
  }

  /** Whether the bare JID has any bound resource (no array made, for hot paths). */
  has(bare: string): boolean {
    return this.byBare.has(bare);
  }

  /** How many resources the bare JID has bound (no array made, for hot paths). */
  resourceCount(bare: string): number {
    return this.byBare.get(bare)?.size ?? 0;
  }

  /** Resources with available presence. */
  available(bare: string): ClientSession[] {
    return this.resources(bare).filter((s) => s.presence !== null);
  }

  get count(): number {
    return this.total;
  }

  all(): IterableIterator<ClientSession> {
    const maps = this.byBare.values();
    return (function* () {
      for (const m of maps) yield* m.values();
    })();
  }
}
