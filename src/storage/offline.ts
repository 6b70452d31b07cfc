// Offline messages (XEP-0160): per user (bare JID), the messages that
// arrived while no resource could take them, as XML text in arrival order.
// Additions for one user are serialised (the count limit), and so are
// deliveries (two resources must not both take the same messages); an
// addition during a delivery only appends behind what is being delivered,
// so it is neither lost nor sent twice. The two never wait for each other:
// a delivery waits for its messages to reach the client before removing
// them, and an addition may be the client's own stanza that this output
// waits behind (storage/durability.ts).
import type { ServerContext } from '../host/context.ts';
import { KeyedMutex } from '../util/keyed-mutex.ts';
import { type Element, parse } from '../xml/element.ts';
import type { ListStore, StorageBackend } from './types.ts';

export class OfflineStore {
  private readonly list: ListStore<string>;
  private readonly adding = new KeyedMutex();
  private readonly draining = new KeyedMutex();

  constructor(
    backend: StorageBackend,
    private readonly server: ServerContext,
  ) {
    this.list = backend.list<string>('offline');
  }

  /** Stores a message; false when the user already has `limits.offlineMaxMessages`. */
  add(user: string, stanza: Element): Promise<boolean> {
    return this.adding.run(user, async () => {
      if ((await this.list.count(user)) >= this.server.config.limits.offlineMaxMessages) return false;
      await this.list.append(user, stanza.toString());
      return true;
    });
  }

  /**
   * Hands the stored messages to `deliver`, in batches of about
   * `batchBytes` (at least one message each), and removes each batch once
   * `deliver` resolves true; a false stops there (a session that went away
   * keeps the rest for the next one). Batches let a slow reader take a big
   * backlog at its own pace.
   */
  drain(
    user: string,
    deliver: (messages: Element[]) => Promise<boolean>,
    batchBytes = Number.POSITIVE_INFINITY,
  ): Promise<void> {
    return this.draining.run(user, async () => {
      const stored = await this.list.list(user);
      for (let start = 0; start < stored.length; ) {
        let end = start + 1;
        let size = stored[start]!.length;
        while (end < stored.length && size + stored[end]!.length <= batchBytes) size += stored[end++]!.length;
        if (!(await deliver(stored.slice(start, end).map((xml) => parse(xml))))) return;
        await this.list.shift(user, end - start);
        start = end;
      }
    });
  }
}
