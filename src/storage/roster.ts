// Rosters (RFC 6121 §2): one record per user (bare JID) holding the items,
// the inbound subscription requests not yet answered, and the roster version
// (XEP-0237, a counter bumped whenever an item changes). The roster module,
// the presence module and the MSN gateway all edit rosters through this one
// shared instance; `update` serialises read-modify-write per user and reports
// which items changed, so callers know what to push. Rosters are not kept in
// memory, but views of some are (onChange); in a cluster those follow the
// other nodes' changes too.
import { KeyedMutex } from '../util/keyed-mutex.ts';
import type { KeyValueStore, StorageBackend, StoreChanges } from './types.ts';

/** The store name (also the name its changes are announced under). */
export const ROSTER_STORE = 'roster';

interface Watcher {
  fn: (user: string, roster: Roster) => void;
  follows: (user: string) => boolean;
}

export type Subscription = 'none' | 'to' | 'from' | 'both';

export interface RosterItem {
  /** The contact's bare JID (normalised). */
  jid: string;
  name?: string;
  subscription: Subscription;
  /** An outbound subscription request is waiting for the contact's answer. */
  ask?: 'subscribe';
  /** The user pre-approved the contact's future request (RFC 6121 §3.4). */
  approved?: boolean;
  groups: string[];
}

/** An inbound subscription request, kept until the user answers it. */
export interface PendingRequest {
  jid: string;
  status?: string;
  /** XEP-0172 nickname the requester sent along. */
  nick?: string;
}

/** A user's roster as callers see and edit it inside `update`. */
export interface Roster {
  version: number;
  items: Map<string, RosterItem>;
  pending: Map<string, PendingRequest>;
}

/** What changed in one `update`: items set or removed, and the new version. */
export interface RosterChanges<T> {
  result: T;
  version: number;
  /** Items as they are now; `removed` ones are gone from the roster. */
  changed: Array<{ item: RosterItem; removed: boolean }>;
}

interface Stored {
  version: number;
  items: RosterItem[];
  pending: PendingRequest[];
}

export class RosterStore {
  private readonly kv: KeyValueStore<Stored>;
  private readonly mutex = new KeyedMutex();
  private readonly watchers: Watcher[] = [];
  private readonly changes: StoreChanges | undefined;

  constructor(backend: StorageBackend, ctx?: { readonly storeChanges?: StoreChanges }) {
    this.kv = backend.keyValue<Stored>(ROSTER_STORE);
    this.changes = ctx?.storeChanges;
    this.changes?.follow(ROSTER_STORE, { reload: (user) => this.reread(user), reloadAll: () => this.rereadAll() });
  }

  /**
   * Calls `fn` after each saved change of any roster (for views kept in
   * memory), and after another cluster node changed the roster of a user
   * `follows` says the view covers (only those are read again).
   */
  onChange(fn: (user: string, roster: Roster) => void, follows: (user: string) => boolean): void {
    this.watchers.push({ fn, follows });
  }

  /** Another node changed the user's roster: the views covering it see it as storage has it. */
  private reread(user: string): Promise<void> {
    const watching = this.watchers.filter((w) => w.follows(user));
    if (!watching.length) return Promise.resolve();
    // In turn with this node's own updates, so a view never goes back to an older roster.
    return this.mutex.run(user, async () => {
      const roster = await this.get(user);
      for (const w of watching) w.fn(user, roster);
    });
  }

  /** Changes may have been missed: every roster a view covers is read again. */
  private async rereadAll(): Promise<void> {
    if (!this.watchers.length) return;
    for await (const user of this.kv.keys()) await this.reread(user);
  }

  async get(user: string): Promise<Roster> {
    const s = await this.kv.get(user);
    return {
      version: s?.version ?? 0,
      items: new Map((s?.items ?? []).map((i) => [i.jid, i])),
      pending: new Map((s?.pending ?? []).map((p) => [p.jid, p])),
    };
  }

  async getItem(user: string, jid: string): Promise<RosterItem | undefined> {
    return (await this.get(user)).items.get(jid);
  }

  async version(user: string): Promise<number> {
    return (await this.get(user)).version;
  }

  /**
   * Runs `fn` on the user's roster with no other update of that roster in
   * between, saves what it changed, and bumps the version when an item did.
   * `fn` must not call `update` for the same user (it would wait on itself).
   */
  update<T>(user: string, fn: (roster: Roster) => T | Promise<T>): Promise<RosterChanges<T>> {
    return this.mutex.run(user, async () => {
      const roster = await this.get(user);
      const before = new Map([...roster.items].map(([jid, item]) => [jid, canonical(item)]));
      const pendingBefore = canonical([...roster.pending.values()]);
      const result = await fn(roster);
      const changed: RosterChanges<T>['changed'] = [];
      for (const [jid, item] of roster.items) {
        if (before.get(jid) !== canonical(item)) changed.push({ item, removed: false });
      }
      for (const [jid, json] of before) {
        if (!roster.items.has(jid)) changed.push({ item: JSON.parse(json) as RosterItem, removed: true });
      }
      if (changed.length) roster.version++;
      if (changed.length || canonical([...roster.pending.values()]) !== pendingBefore) {
        await this.kv.set(user, {
          version: roster.version,
          items: [...roster.items.values()],
          pending: [...roster.pending.values()],
        });
        for (const w of this.watchers) w.fn(user, roster);
        // Views hold items only: a change of pending requests alone is not announced.
        if (changed.length) await this.changes?.changed(ROSTER_STORE, user);
      }
      return { result, version: roster.version, changed };
    });
  }

  /** Adds or replaces one item. */
  setItem(user: string, item: RosterItem): Promise<RosterChanges<void>> {
    return this.update(user, (r) => {
      r.items.set(item.jid, item);
    });
  }

  /** Removes one item (its subscriptions are the caller's business). */
  removeItem(user: string, jid: string): Promise<RosterChanges<boolean>> {
    return this.update(user, (r) => r.items.delete(jid));
  }
}

/** JSON with sorted keys and no undefined fields: equal content, equal text. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}
