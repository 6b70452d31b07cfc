// Accounts: one record per local user, holding only SCRAM keys (never the
// password). Keys are the normalised localpart.
import { deriveCredentials, SCRAM_HASHES, type ScramCredentials, type ScramHash } from '../auth/scram.ts';
import type { KeyValueStore, StorageBackend } from './types.ts';

export interface AccountRecord {
  scram: Partial<Record<ScramHash, ScramCredentials>>;
  created: string;
}

export class AccountStore {
  private readonly kv: KeyValueStore<AccountRecord>;

  constructor(backend: StorageBackend) {
    this.kv = backend.keyValue<AccountRecord>('accounts');
  }

  get(user: string): Promise<AccountRecord | undefined> {
    return this.kv.get(user);
  }

  async exists(user: string): Promise<boolean> {
    return (await this.kv.get(user)) !== undefined;
  }

  /** Creates or replaces the account's credentials. */
  async setPassword(user: string, password: string): Promise<void> {
    const prev = await this.kv.get(user);
    const scram: AccountRecord['scram'] = {};
    for (const h of SCRAM_HASHES) scram[h] = deriveCredentials(h, password);
    await this.kv.set(user, { scram, created: prev?.created ?? new Date().toISOString() });
  }

  delete(user: string): Promise<void> {
    return this.kv.delete(user);
  }

  users(): AsyncIterable<string> {
    return this.kv.keys();
  }
}
