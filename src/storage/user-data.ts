// Removing a user's data from every per-user store at once (account
// deletion from the CLI or by in-band unregistration). Stores register the
// names they keep per-user data under, so this list stays in one place.
// Uploaded files are data too: their records and bytes go with the account.
import type { Config } from '../config/schema.ts';
import type { StorageBackend } from './types.ts';
import { deleteUserUploads } from './uploads.ts';

/** Key-value stores keyed by bare JID. */
export const PER_USER_KEY_VALUE = new Set<string>(['roster', 'vcard', 'blocklist', 'last', 'msn-registrations', 'msn-files', 'private', 'mam-prefs', 'fast-tokens', 'push']);
/** List stores keyed by bare JID. */
export const PER_USER_LISTS = new Set<string>(['offline']);
/** Pubsub stores whose services are bare JIDs (PEP: every node of the account). */
export const PER_USER_PUBSUB = new Set<string>(['pep']);
/** Archives whose owner is a bare JID (the user's message archive). */
export const PER_USER_ARCHIVES = new Set<string>(['mam']);

/** In one transaction where the backend has them (PostgreSQL): all of it goes, or none. */
export function deleteUserData(backend: StorageBackend, bareJid: string, config: Config): Promise<void> {
  return backend.transaction(async (tx) => {
    for (const name of PER_USER_KEY_VALUE) await tx.keyValue(name).delete(bareJid);
    for (const name of PER_USER_LISTS) await tx.list(name).shift(bareJid);
    for (const name of PER_USER_PUBSUB) await tx.pubsub(name).deleteService(bareJid);
    for (const name of PER_USER_ARCHIVES) await tx.archive(name).removeOwner(bareJid);
    await deleteUserUploads(tx, config.upload.path, bareJid);
  });
}
