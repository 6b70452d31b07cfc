// Per-user entries of one key-value store kept in memory, for stores whose
// data is consulted synchronously on every stanza (blocklists, archiving
// preferences, push registrations). Read once at start; written through
// (storage first, then memory, then the other processes are told); and in
// a cluster kept coherent: another process's notice makes this one re-read
// the entry from storage (`StoreChanges`). Writes and re-reads of one entry
// are serialised, so the last re-read started reads the latest write.
import { KeyedMutex } from '../util/keyed-mutex.ts';
import type { KeyValueStore, StoreChanges } from './types.ts';

/** Called with an entry's next value before memory switches to it (a view built from it, made ready first). */
export type EntryHook<M> = (key: string, next: M | undefined) => void | Promise<void>;

export class MemoryEntries<S, M> {
  private readonly memory = new Map<string, M>();
  private readonly mutex = new KeyedMutex();
  private readonly hooks: Array<EntryHook<M>> = [];
  private loading: Promise<void> | null = null;
  /**
   * @param decode what memory holds for a stored value; undefined for "nothing kept" (an empty list)
   */
  constructor(
    private readonly kv: KeyValueStore<S>,
    private readonly name: string,
    private readonly decode: (stored: S) => M | undefined,
    private readonly changes: StoreChanges | undefined,
  ) {
    // Not loaded: this process does not use the store (its feature is off), nothing to follow.
    changes?.follow(name, {
      reload: (key) => (this.loading ? this.reload(key) : Promise.resolve()),
      reloadAll: () => (this.loading ? this.reloadAll() : Promise.resolve()),
    });
  }

  /** Reads every entry into memory (once; later calls wait for the first). */
  load(): Promise<void> {
    this.loading ??= (async () => {
      for await (const key of this.kv.keys()) {
        const stored = await this.kv.get(key);
        const m = stored === undefined ? undefined : this.decode(stored);
        if (m !== undefined) this.memory.set(key, m);
      }
    })();
    return this.loading;
  }

  get(key: string): M | undefined {
    return this.memory.get(key);
  }

  entries(): IterableIterator<[string, M]> {
    return this.memory.entries();
  }

  onChange(hook: EntryHook<M>): void {
    this.hooks.push(hook);
  }

  /** Runs `work` with no other write or re-read of `key` in between. */
  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    return this.mutex.run(key, work);
  }

  /** What storage holds now (inside `run`, the base of a read-modify-write). */
  stored(key: string): Promise<S | undefined> {
    return this.kv.get(key);
  }

  /**
   * Inside `run`: stores `value` (undefined deletes), then memory follows
   * (a failed write changes nothing), then the other processes are told.
   */
  async write(key: string, value: S | undefined): Promise<void> {
    const next = value === undefined ? undefined : this.decode(value);
    if (next === undefined) await this.kv.delete(key);
    else await this.kv.set(key, value!);
    await this.apply(key, next);
    await this.changes?.changed(this.name, key);
  }

  /** Memory forgets `key` whose storage was cleared elsewhere (account removal); the other processes re-read it. */
  forget(key: string): Promise<void> {
    return this.run(key, async () => {
      await this.apply(key, undefined);
      await this.changes?.changed(this.name, key);
    });
  }

  /** Re-reads one entry (another process changed it). */
  reload(key: string): Promise<void> {
    return this.run(key, async () => {
      const stored = await this.kv.get(key);
      await this.apply(key, stored === undefined ? undefined : this.decode(stored));
    });
  }

  /** Re-reads every entry: those in storage and those memory holds (some may be gone from storage). */
  async reloadAll(): Promise<void> {
    await this.load();
    const keys = new Set(this.memory.keys());
    for await (const key of this.kv.keys()) keys.add(key);
    for (const key of keys) await this.reload(key);
  }

  private async apply(key: string, next: M | undefined): Promise<void> {
    for (const hook of this.hooks) await hook(key, next);
    if (next === undefined) this.memory.delete(key);
    else this.memory.set(key, next);
  }
}
