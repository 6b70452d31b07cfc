// Random secrets the server keeps in storage, made on first start: values
// derived from them must stay the same across restarts (a decoy SCRAM salt
// that changed at each restart would betray that the account is unknown).
import { randomBytes } from 'node:crypto';
import type { StorageBackend } from '../storage/types.ts';

// Shared with the dialback key secret (s2s/dialback-keys.ts).
const STORE = 'server-secrets';

/** The secret named `name`, created (32 random bytes) when missing. */
export async function loadServerSecret(storage: StorageBackend, name: string): Promise<Buffer> {
  const kv = storage.keyValue<string>(STORE);
  // `add`: cluster nodes starting together on a fresh database agree on one secret.
  const hex = (await kv.get(name)) ?? (await kv.add(name, randomBytes(32).toString('hex')));
  return Buffer.from(hex, 'hex');
}
