// The server's side of `StoreChanges` (storage/types.ts): stores announce
// changes of entries they keep in memory and follow other processes'
// announcements through this one object. It carries nothing itself: in
// cluster mode the cluster attaches a link (cluster/cluster.ts publishes on
// Redis and hands back what other nodes published); without one, announcing
// costs one check. Stores stay free of the cluster and of Redis.
import type { Logger } from '../log.ts';
import type { StoreChanges, StoreFollower } from '../storage/types.ts';

/** Where announcements go: the cluster's notice channel. */
export interface StoreChangesLink {
  publish(store: string, key: string): Promise<void>;
}

export class StoreChangeHub implements StoreChanges {
  private link: StoreChangesLink | null = null;
  private readonly followers = new Map<string, StoreFollower[]>();
  /** Entries re-read after another process's notice, per store (`jabberfly status`, tests). */
  readonly reloaded = new Map<string, number>();

  constructor(private readonly log: Logger) {}

  changed(store: string, key: string): Promise<void> {
    if (!this.link) return Promise.resolve();
    return this.link.publish(store, key).catch((err) => this.log.warn('store change not announced', { store, key, error: String(err) }));
  }

  follow(store: string, follower: StoreFollower): void {
    let list = this.followers.get(store);
    if (!list) {
      list = [];
      this.followers.set(store, list);
    }
    list.push(follower);
  }

  /** Set by the cluster once it listens for other nodes' notices; null when it leaves. */
  attach(link: StoreChangesLink | null): void {
    this.link = link;
  }

  /** Another process changed `key` of `store`: its followers re-read it. Never rejects. */
  async received(store: string, key: string): Promise<void> {
    for (const f of this.followers.get(store) ?? []) {
      try {
        await f.reload(key);
        this.reloaded.set(store, (this.reloaded.get(store) ?? 0) + 1);
      } catch (err) {
        this.log.error('store entry not re-read after a change elsewhere', { store, key, error: String(err) });
      }
    }
  }

  /** Notices may have been missed (joining, a lost connection): every follower re-reads everything. */
  async resync(): Promise<void> {
    for (const [store, list] of this.followers) {
      for (const f of list) {
        try {
          await f.reloadAll();
        } catch (err) {
          this.log.error('store not re-read', { store, error: String(err) });
        }
      }
    }
  }
}
