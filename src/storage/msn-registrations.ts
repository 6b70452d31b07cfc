// Transport registrations: which MSN account each user (bare JID, local or
// remote) registered with. The MSN password is sealed by the gateway's
// SecretBox before it gets here; this store never sees it in clear.
import type { KeyValueStore, StorageBackend } from './types.ts';

export interface MsnRegistration {
  email: string;
  /** SecretBox-sealed MSN password. */
  passwordSealed: string;
  /**
   * Write MSN contacts straight into the user's roster (local users only).
   * When false, contacts are offered with roster-subsync subscribe presences.
   */
  directRosterSync: boolean;
  registered: string;
}

export class MsnRegistrationStore {
  private readonly kv: KeyValueStore<MsnRegistration>;

  constructor(backend: StorageBackend) {
    this.kv = backend.keyValue<MsnRegistration>('msn-registrations');
  }

  get(bareJid: string): Promise<MsnRegistration | undefined> {
    return this.kv.get(bareJid);
  }

  set(bareJid: string, reg: MsnRegistration): Promise<void> {
    return this.kv.set(bareJid, reg);
  }

  delete(bareJid: string): Promise<void> {
    return this.kv.delete(bareJid);
  }

  users(): AsyncIterable<string> {
    return this.kv.keys();
  }
}
