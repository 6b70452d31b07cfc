// Blocklists (XEP-0191): per user (bare JID), the JIDs they blocked. Every
// stanza to or from a user is checked against them synchronously, so all
// lists are kept in memory, loaded once at start (lists are short and a
// small site has few users); changes are written through per user in
// order, each made to what storage holds, and in a cluster the other nodes
// re-read the list (memory-entries.ts).
import type { Jid } from '../jid/jid.ts';
import { MemoryEntries } from './memory-entries.ts';
import type { StorageBackend, StoreChanges } from './types.ts';

/** The store name (also the name its changes are announced under). */
export const BLOCKLIST_STORE = 'blocklist';

export class BlocklistStore {
  private readonly lists: MemoryEntries<string[], Set<string>>;

  constructor(backend: StorageBackend, ctx?: { readonly storeChanges?: StoreChanges }) {
    const kv = backend.keyValue<string[]>(BLOCKLIST_STORE);
    this.lists = new MemoryEntries(kv, BLOCKLIST_STORE, (jids) => (jids.length ? new Set(jids) : undefined), ctx?.storeChanges);
  }

  /** Reads every list into memory; call (and await) before using the others. */
  load(): Promise<void> {
    return this.lists.load();
  }

  get(user: string): string[] {
    return [...(this.lists.get(user) ?? [])];
  }

  /**
   * Whether `user` blocked `jid`, matching items as XEP-0191 §6 says: the
   * full JID, the bare JID, domain/resource, or the domain or a parent of it.
   */
  isBlocked(user: string, jid: Jid): boolean {
    const list = this.lists.get(user);
    if (!list) return false;
    if (list.has(jid.toString()) || list.has(jid.bare)) return true;
    if (jid.resource && list.has(`${jid.domain}/${jid.resource}`)) return true;
    for (let d = jid.domain; ; d = d.slice(d.indexOf('.') + 1)) {
      if (list.has(d)) return true;
      if (!d.includes('.')) return false;
    }
  }

  /**
   * Adds normalised JIDs; returns those that were not blocked yet, or null
   * (and changes nothing) if the list would grow past `max`.
   */
  block(user: string, jids: string[], max: number): Promise<string[] | null> {
    return this.lists.run(user, async () => {
      // What storage holds: another node may have changed it since this one read it.
      const list = new Set((await this.lists.stored(user)) ?? []);
      const added = jids.filter((j) => !list.has(j));
      if (list.size + added.length > max) return null;
      for (const j of added) list.add(j);
      if (added.length) await this.lists.write(user, [...list]);
      return added;
    });
  }

  /** Removes JIDs (all of them when `jids` is null); returns those removed. */
  unblock(user: string, jids: string[] | null): Promise<string[]> {
    return this.lists.run(user, async () => {
      const list = new Set((await this.lists.stored(user)) ?? []);
      const removed = jids === null ? [...list] : jids.filter((j) => list.has(j));
      for (const j of removed) list.delete(j);
      if (removed.length) await this.lists.write(user, list.size ? [...list] : undefined);
      return removed;
    });
  }
}
