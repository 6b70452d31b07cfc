// Archiving preferences (XEP-0441): per user (bare JID), the default
// (always, never, roster) and the JIDs always or never archived. Every
// archived message consults them synchronously, so the preferences of the
// users who set any are kept in memory, loaded once at start (few users
// change them); the others get the configured default. Changes are written
// through per user in order, and in a cluster the other nodes re-read them
// (memory-entries.ts).
import { type EntryHook, MemoryEntries } from './memory-entries.ts';
import type { StorageBackend, StoreChanges } from './types.ts';

/** The store name (also the name its changes are announced under). */
export const MAM_PREFS_STORE = 'mam-prefs';

export type ArchiveDefault = 'always' | 'never' | 'roster';

export interface MamPrefs {
  default: ArchiveDefault;
  /** Normalised JIDs (bare or full) always archived. */
  always: string[];
  /** Normalised JIDs (bare or full) never archived. */
  never: string[];
}

export class MamPrefsStore {
  private readonly prefs: MemoryEntries<MamPrefs, MamPrefs>;

  constructor(backend: StorageBackend, ctx?: { readonly storeChanges?: StoreChanges }) {
    const kv = backend.keyValue<MamPrefs>(MAM_PREFS_STORE);
    this.prefs = new MemoryEntries(kv, MAM_PREFS_STORE, (p) => p, ctx?.storeChanges);
  }

  /** Reads every user's preferences into memory; call (and await) before the others. */
  load(): Promise<void> {
    return this.prefs.load();
  }

  /** The user's preferences, or undefined when they never set any. */
  get(user: string): MamPrefs | undefined {
    return this.prefs.get(user);
  }

  /** Users whose default is `mode`. */
  usersWithDefault(mode: ArchiveDefault): string[] {
    return [...this.prefs.entries()].filter(([, p]) => p.default === mode).map(([u]) => u);
  }

  /**
   * Calls `hook` with a user's next preferences (undefined: none) before
   * they apply, whether changed here or re-read after another node changed
   * them, so what depends on them (a roster view) is ready first.
   */
  onChange(hook: EntryHook<MamPrefs>): void {
    this.prefs.onChange(hook);
  }

  set(user: string, prefs: MamPrefs): Promise<void> {
    return this.prefs.run(user, () => this.prefs.write(user, prefs));
  }

  /** Drops the user's preferences (account removal). */
  forget(user: string): Promise<void> {
    return this.prefs.run(user, () => this.prefs.write(user, undefined));
  }
}
