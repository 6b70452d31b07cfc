// Offline messages (XEP-0160): per user (bare JID), the messages that
// arrived while no resource could take them, as XML text in arrival order.
// Additions and deliveries for one user are serialised so a message stored
// while another resource is draining the queue is neither lost nor sent twice.
import type { ServerContext } from '../host/context.ts';
import { KeyedMutex } from '../util/keyed-mutex.ts';
import { type Element, parse } from '../xml/element.ts';
import type { ListStore, StorageBackend } from './types.ts';

export class OfflineStore {
  private readonly list: ListStore<string>;
  private readonly mutex = new KeyedMutex();

  constructor(
    backend: StorageBackend,
    private readonly server: ServerContext,
  ) {
    this.list = backend.list<string>('offline');
  }

  /** Stores a message; false when the user already has `limits.offlineMaxMessages`. */
  add(user: string, stanza: Element): Promise<boolean> {
    return this.mutex.run(user, async () => {
      if ((await this.list.count(user)) >= this.server.config.limits.offlineMaxMessages) return false;
      await this.list.append(user, stanza.toString());
      return true;
    });
  }

  /**
   * Hands the stored messages to `deliver` and removes them if it returns
   * true (a session that went away meanwhile keeps them for the next one).
   */
  drain(user: string, deliver: (messages: Element[]) => boolean): Promise<void> {
    return this.mutex.run(user, async () => {
      const stored = await this.list.list(user);
      if (stored.length === 0) return;
      if (deliver(stored.map((xml) => parse(xml)))) await this.list.shift(user, stored.length);
    });
  }
}
