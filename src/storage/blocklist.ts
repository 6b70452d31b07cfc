// Blocklists (XEP-0191): per user (bare JID), the JIDs they blocked. Every
// stanza to or from a user is checked against them synchronously, so all
// lists are kept in memory, loaded once at start (lists are short and a
// small site has few users); changes are written through per user in order.
import type { Jid } from '../jid/jid.ts';
import { KeyedMutex } from '../util/keyed-mutex.ts';
import type { KeyValueStore, StorageBackend } from './types.ts';

export class BlocklistStore {
  private readonly kv: KeyValueStore<string[]>;
  private readonly lists = new Map<string, Set<string>>();
  private readonly mutex = new KeyedMutex();
  private loading: Promise<void> | null = null;

  constructor(backend: StorageBackend) {
    this.kv = backend.keyValue<string[]>('blocklist');
  }

  /** Reads every list into memory; call (and await) before using the others. */
  load(): Promise<void> {
    this.loading ??= (async () => {
      for await (const user of this.kv.keys()) {
        const jids = await this.kv.get(user);
        if (jids?.length) this.lists.set(user, new Set(jids));
      }
    })();
    return this.loading;
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
    return this.mutex.run(user, async () => {
      const list = new Set(this.lists.get(user));
      const added = jids.filter((j) => !list.has(j));
      if (list.size + added.length > max) return null;
      for (const j of added) list.add(j);
      if (added.length) await this.save(user, list);
      return added;
    });
  }

  /** Removes JIDs (all of them when `jids` is null); returns those removed. */
  unblock(user: string, jids: string[] | null): Promise<string[]> {
    return this.mutex.run(user, async () => {
      const list = new Set(this.lists.get(user));
      const removed = jids === null ? [...list] : jids.filter((j) => list.has(j));
      for (const j of removed) list.delete(j);
      if (removed.length) await this.save(user, list);
      return removed;
    });
  }

  private async save(user: string, list: Set<string>): Promise<void> {
    if (list.size) await this.kv.set(user, [...list]);
    else await this.kv.delete(user);
    // Memory changes only once storage has it, so a failed write changes nothing.
    if (list.size) this.lists.set(user, list);
    else this.lists.delete(user);
  }
}
