// When each user last went offline (XEP-0012), keyed by bare JID, with the
// status text of their final unavailable presence.
import type { ServerContext } from '../host/context.ts';
import type { KeyValueStore, StorageBackend } from './types.ts';

export interface LastActivity {
  /** Logout time, milliseconds since the epoch. */
  at: number;
  status?: string;
}

export class LastActivityStore {
  private readonly kv: KeyValueStore<LastActivity>;

  constructor(backend: StorageBackend, _server: ServerContext) {
    this.kv = backend.keyValue<LastActivity>('last');
  }

  get(bareJid: string): Promise<LastActivity | undefined> {
    return this.kv.get(bareJid);
  }

  set(bareJid: string, activity: LastActivity): Promise<void> {
    return this.kv.set(bareJid, activity);
  }
}
