// Push registrations (XEP-0357), per user (bare JID): the app servers
// ("XMPP Push Services") the user's clients asked to be notified through,
// each a JID and a node, with the publish options the app server wants
// back (a secret, usually) and the resource of the client that enabled it.
// Every message to an absent user is checked against them synchronously,
// so all registrations are kept in memory, loaded once at start (few users
// enable push); changes are written through per user in order, each made
// to what storage holds (not to this process's copy). In a cluster another
// node may have changed them since: `current()` reads storage.
import { KeyedMutex } from '../util/keyed-mutex.ts';
import type { KeyValueStore, StorageBackend } from './types.ts';

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
  private readonly kv: KeyValueStore<PushRegistration[]>;
  private readonly byUser = new Map<string, PushRegistration[]>();
  private readonly mutex = new KeyedMutex();
  private loading: Promise<void> | null = null;

  constructor(backend: StorageBackend) {
    this.kv = backend.keyValue<PushRegistration[]>(PUSH_STORE);
  }

  /** Reads every user's registrations into memory; call (and await) before the others. */
  load(): Promise<void> {
    this.loading ??= (async () => {
      for await (const user of this.kv.keys()) {
        const list = await this.kv.get(user);
        if (list?.length) this.byUser.set(user, list);
      }
    })();
    return this.loading;
  }

  /** The user's registrations as this process knows them (none: an empty list). */
  get(user: string): readonly PushRegistration[] {
    return this.byUser.get(user) ?? [];
  }

  /** The user's registrations as storage has them (another cluster node may have changed them); memory follows. */
  async current(user: string): Promise<readonly PushRegistration[]> {
    const list = (await this.kv.get(user)) ?? [];
    if (list.length) this.byUser.set(user, list);
    else this.byUser.delete(user);
    return list;
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

  /** Memory changes only once storage has the change; `change` returns null for "nothing to do". */
  private update(user: string, change: (list: PushRegistration[]) => PushRegistration[] | null): Promise<PushRegistration[] | null> {
    return this.mutex.run(user, async () => {
      const next = change((await this.kv.get(user)) ?? []);
      if (next === null) return null;
      if (next.length) await this.kv.set(user, next);
      else await this.kv.delete(user);
      if (next.length) this.byUser.set(user, next);
      else this.byUser.delete(user);
      return next;
    });
  }

  /** Drops a removed account's registrations from memory (storage is cleared by user-data.ts). */
  forget(user: string): void {
    this.byUser.delete(user);
  }
}
