// Rosters (RFC 6121 §2): one record per user (bare JID) holding the items,
// the inbound subscription requests not yet answered, and the roster version
// (XEP-0237, a counter bumped whenever an item changes). The roster module,
// the presence module and the MSN gateway all edit rosters through this one
// shared instance; `update` serialises read-modify-write per user and reports
// which items changed, so callers know what to push.
import { KeyedMutex } from '../util/keyed-mutex.ts';
import type { KeyValueStore, StorageBackend } from './types.ts';

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
  private readonly watchers: Array<(user: string, roster: Roster) => void> = [];

  constructor(backend: StorageBackend) {
    this.kv = backend.keyValue<Stored>('roster');
  }

  /** Calls `fn` after each saved change of any roster (for views kept in memory). */
  onChange(fn: (user: string, roster: Roster) => void): void {
    this.watchers.push(fn);
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
        for (const fn of this.watchers) fn(user, roster);
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
