// Push registrations (XEP-0357), per user (bare JID): the app servers
// ("XMPP Push Services") the user's clients asked to be notified through,
// each a JID and a node, with the publish options the app server wants
// back (a secret, usually) and the resource of the client that enabled it.
// Every message to an absent user is checked against them synchronously,
// so all registrations are kept in memory, loaded once at start (few users
// enable push); changes are written through per user in order, each made
// to what storage holds (not to this process's copy), and in a cluster the
// other nodes re-read them (memory-entries.ts).
import { MemoryEntries } from './memory-entries.ts';
import type { StorageBackend, StoreChanges } from './types.ts';

/** The store name (listed in storage/user-data.ts). */
export const PUSH_STORE = 'push';

export interface PushRegistration {
  /** The XMPP Push Service (app server) JID. */
  jid: string;
  /** Its node for this device; '' when the client gave none. */
  node: string;
  /** Publish-options fields to send with each notification (var, values), FORM_TYPE left out. */
  options: Array<[string, string[]]>;
  /** The resource of the client session that enabled it (its notifications while it is gone or held). */
  resource: string;
  /** Epoch ms. */
  enabled: number;
}

export class PushStore {
  private readonly byUser: MemoryEntries<PushRegistration[], PushRegistration[]>;

  constructor(backend: StorageBackend, ctx?: { readonly storeChanges?: StoreChanges }) {
    const kv = backend.keyValue<PushRegistration[]>(PUSH_STORE);
    this.byUser = new MemoryEntries(kv, PUSH_STORE, (list) => (list.length ? list : undefined), ctx?.storeChanges);
  }

  /** Reads every user's registrations into memory; call (and await) before the others. */
  load(): Promise<void> {
    return this.byUser.load();
  }

  /** The user's registrations as this process knows them (none: an empty list). */
  get(user: string): readonly PushRegistration[] {
    return this.byUser.get(user) ?? [];
  }

  /** The user's registrations as storage has them now; memory follows. */
  async current(user: string): Promise<readonly PushRegistration[]> {
    await this.byUser.reload(user);
    return this.get(user);
  }

  /**
   * Adds a registration, or replaces the one with the same JID and node
   * (XEP-0357 §5: the last request's options win). False when the user
   * already has `max` others.
   */
  enable(user: string, reg: PushRegistration, max: number): Promise<boolean> {
    return this.update(user, (list) => {
      const rest = list.filter((r) => !(r.jid === reg.jid && r.node === reg.node));
      if (rest.length >= max) return null;
      return [...rest, reg];
    }).then((changed) => changed !== null);
  }

  /** Removes the registrations for `jid` (one node, or all of them); resolves with how many went. */
  async disable(user: string, jid: string, node?: string): Promise<number> {
    let removed = 0;
    await this.update(user, (list) => {
      const rest = list.filter((r) => !(r.jid === jid && (node === undefined || r.node === node)));
      removed = list.length - rest.length;
      return removed ? rest : null;
    });
    return removed;
  }

  /** Made to what storage holds; `change` returns null for "nothing to do". */
  private update(user: string, change: (list: PushRegistration[]) => PushRegistration[] | null): Promise<PushRegistration[] | null> {
    return this.byUser.run(user, async () => {
      const next = change((await this.byUser.stored(user)) ?? []);
      if (next === null) return null;
      await this.byUser.write(user, next.length ? next : undefined);
      return next;
    });
  }

  /** Drops a removed account's registrations from memory here and on the other nodes (storage is cleared by user-data.ts). */
  forget(user: string): Promise<void> {
    return this.byUser.forget(user);
  }
}
