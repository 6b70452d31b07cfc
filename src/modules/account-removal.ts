// Removing an account from a running server: in-band (XEP-0077 <remove/>)
// and from the admin channel (`jabberfly deluser`) do the same thing.
import type { ServerContext } from '../host/context.ts';
import { BlocklistStore } from '../storage/blocklist.ts';
import { MamPrefsStore } from '../storage/mam-prefs.ts';
import { PushStore } from '../storage/push.ts';
import { RosterStore } from '../storage/roster.ts';
import { deleteUserData } from '../storage/user-data.ts';
import { el } from '../xml/element.ts';

/**
 * Deletes the account and all its data and tells contacts the
 * subscriptions are gone. The caller closes the user's sessions once it has
 * answered (in-band removal answers the removing session first).
 */
export async function removeAccount(server: ServerContext, bare: string): Promise<void> {
  const local = bare.slice(0, bare.indexOf('@'));
  // The account goes first, so nothing that runs as the sessions close
  // (last activity, ...) writes data for it again; the result says all is gone.
  await server.accounts.delete(local);
  // Contacts learn the subscriptions are gone (XEP-0077 §3.2 SHOULD).
  const roster = await server.store(RosterStore).get(bare);
  for (const item of roster.items.values()) {
    if (item.subscription === 'to' || item.subscription === 'both' || item.ask) {
      server.router.route(el('presence', { type: 'unsubscribe', from: bare, to: item.jid }));
    }
    if (item.subscription === 'from' || item.subscription === 'both') {
      server.router.route(el('presence', { type: 'unsubscribed', from: bare, to: item.jid }));
    }
  }
  // The blocklist and archiving preferences live in memory too: clear them through their stores.
  await server.store(BlocklistStore).unblock(bare, null);
  await server.store(MamPrefsStore).forget(bare);
  await deleteUserData(server.storage, bare, server.config);
  // Push registrations are kept in memory as well (here and on other cluster nodes); storage is clear by now.
  await server.store(PushStore).forget(bare);
}
