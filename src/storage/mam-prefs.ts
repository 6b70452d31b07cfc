// Archiving preferences (XEP-0441): per user (bare JID), the default
// (always, never, roster) and the JIDs always or never archived. Every
// archived message consults them synchronously, so the preferences of the
// users who set any are kept in memory, loaded once at start (few users
// change them); the others get the configured default. Changes are written
// through per user in order.
import { KeyedMutex } from '../util/keyed-mutex.ts';
import type { KeyValueStore, StorageBackend } from './types.ts';

export type ArchiveDefault = 'always' | 'never' | 'roster';

export interface MamPrefs {
  default: ArchiveDefault;
  /** Normalised JIDs (bare or full) always archived. */
  always: string[];
  /** Normalised JIDs (bare or full) never archived. */
  never: string[];
}

export class MamPrefsStore {
  private readonly kv: KeyValueStore<MamPrefs>;
  private readonly prefs = new Map<string, MamPrefs>();
  private readonly mutex = new KeyedMutex();
  private loading: Promise<void> | null = null;

  constructor(backend: StorageBackend) {
    this.kv = backend.keyValue<MamPrefs>('mam-prefs');
  }

  /** Reads every user's preferences into memory; call (and await) before the others. */
  load(): Promise<void> {
    this.loading ??= (async () => {
      for await (const user of this.kv.keys()) {
        const p = await this.kv.get(user);
        if (p) this.prefs.set(user, p);
      }
    })();
    return this.loading;
  }

  /** The user's preferences, or undefined when they never set any. */
  get(user: string): MamPrefs | undefined {
    return this.prefs.get(user);
  }

  /** Users whose default is `roster` (their rosters are consulted per message). */
  usersWithDefault(mode: ArchiveDefault): string[] {
    return [...this.prefs].filter(([, p]) => p.default === mode).map(([u]) => u);
  }

  set(user: string, prefs: MamPrefs): Promise<void> {
    return this.mutex.run(user, async () => {
      await this.kv.set(user, prefs);
      // Memory changes only once storage has it, so a failed write changes nothing.
      this.prefs.set(user, prefs);
    });
  }

  /** Drops the user's preferences (account removal). */
  forget(user: string): Promise<void> {
    return this.mutex.run(user, async () => {
      await this.kv.delete(user);
      this.prefs.delete(user);
    });
  }
}
