// Roster management (RFC 6121 §2) with roster versioning (XEP-0237, RFC 6121
// §2.6). Clients get, add, update and remove items; every change reaches all
// of the user's interested resources as a roster push. `updateRoster` is the
// one way to change a roster with pushes, for the presence module and the MSN
// gateway alike (the gateway edits rosters with no client action at all).
import { randomBytes } from 'node:crypto';
import type { Module } from '../host/host.ts';
import type { ClientSession } from '../host/session.ts';
import { Jid } from '../jid/jid.ts';
import type { ServerContext } from '../host/context.ts';
import { type Roster, type RosterChanges, type RosterItem, RosterStore } from '../storage/roster.ts';
import { byteLength, type Element, el, firstChild } from '../xml/element.ts';
import { StanzaError } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';

/** The `<item/>` of a roster result or push. */
export function itemElement(item: RosterItem, removed = false): Element {
  return el(
    'item',
    {
      jid: item.jid,
      name: removed ? undefined : item.name,
      subscription: removed ? 'remove' : item.subscription,
      ask: removed ? undefined : item.ask,
      approved: !removed && item.approved ? 'true' : undefined,
    },
    ...(removed ? [] : item.groups.map((g) => el('group', null, g))),
  );
}

/** Sends one item to every interested resource (those that asked for the roster). */
export function pushRosterItem(
  server: ServerContext,
  user: string,
  item: RosterItem,
  version: number,
  removed = false,
): void {
  for (const session of server.sessions.resources(user)) {
    if (!session.rosterRequested) continue;
    session.send(
      el(
        'iq',
        { type: 'set', id: `push-${randomBytes(6).toString('hex')}`, to: session.jid.toString() },
        el('query', { xmlns: NS.roster, ver: String(version) }, itemElement(item, removed)),
      ),
    );
  }
}

/** Pushes every item an update changed. */
export function pushRosterChanges(server: ServerContext, user: string, changes: RosterChanges<unknown>): void {
  for (const { item, removed } of changes.changed)
    pushRosterItem(server, user, item, changes.version, removed);
}

/** Edits a user's roster (serialised per user) and pushes what changed. */
export async function updateRoster<T>(
  server: ServerContext,
  user: string,
  fn: (roster: Roster) => T | Promise<T>,
): Promise<RosterChanges<T>> {
  const changes = await server.store(RosterStore).update(user, fn);
  pushRosterChanges(server, user, changes);
  return changes;
}

/**
 * The roster's item for `jid`, created with no subscription if missing.
 * A roster may not grow past `limits.rosterMaxItems`.
 */
export function itemFor(server: ServerContext, roster: Roster, jid: string): RosterItem {
  let item = roster.items.get(jid);
  if (!item) {
    if (roster.items.size >= server.config.limits.rosterMaxItems) {
      throw new StanzaError(
        'policy-violation',
        `a roster holds at most ${server.config.limits.rosterMaxItems} items`,
      );
    }
    item = { jid, subscription: 'none', groups: [] };
    roster.items.set(jid, item);
  }
  return item;
}

export const rosterModule: Module = (host) => {
  const server = host.server;
  const store = server.store(RosterStore);
  host.features.add(NS.roster);

  host.featureEvents.hook('stream-features', ({ session, features }) => {
    if (!session.authenticated) return;
    features.push(el('ver', { xmlns: NS.rosterver }));
    // Subscription pre-approval (RFC 6121 §3.4).
    features.push(el('sub', { xmlns: 'urn:xmpp:features:pre-approval' }));
  });

  host.hook(`iq-get/self/${NS.roster}:query`, ({ stanza, origin }) => {
    if (origin.kind !== 'c2s') return false;
    const session = origin.session;
    return (async () => {
      const user = session.jid.bare;
      const roster = await store.get(user);
      session.rosterRequested = true;
      const reply = el('iq', { type: 'result', id: stanza.attrs.id, to: session.jid.toString() });
      const clientVer = firstChild(stanza)!.attrs.ver;
      // An unchanged roster is answered with an empty result (RFC 6121 §2.6.3).
      if (clientVer !== String(roster.version)) {
        const query = el('query', { xmlns: NS.roster, ver: String(roster.version) });
        for (const item of roster.items.values()) query.cnode(itemElement(item));
        reply.cnode(query);
      }
      session.send(reply);
    })();
  });

  host.hook(`iq-set/self/${NS.roster}:query`, ({ stanza, origin }) => {
    if (origin.kind !== 'c2s') return false;
    const session = origin.session;
    return (async () => {
      const user = session.jid.bare;
      const items = firstChild(stanza)!.getChildren('item');
      if (items.length !== 1) throw new StanzaError('bad-request', 'a roster set holds exactly one item');
      const request = items[0]!;
      if (!request.attrs.jid) throw new StanzaError('bad-request', 'the item has no jid');
      const contact = Jid.tryParse(request.attrs.jid);
      if (!contact?.isBare) throw new StanzaError('jid-malformed', 'roster items are bare JIDs');
      const jid = contact.bare;
      if (jid === user) throw new StanzaError('not-allowed', 'you cannot add yourself to your roster');

      // Any other value of `subscription` is ignored (RFC 6121 §2.1.2.5), as are `ask` and `approved`.
      if (request.attrs.subscription === 'remove') return removeItem(session, jid, stanza);

      const { name, groups } = readItem(request, server.config.limits.rosterFieldMaxLength);
      await updateRoster(server, user, (roster) => {
        const item = itemFor(server, roster, jid);
        if (name === undefined) delete item.name;
        else item.name = name;
        item.groups = groups;
      });
      session.send(el('iq', { type: 'result', id: stanza.attrs.id, to: session.jid.toString() }));
    })();
  });

  /** Removal cancels both subscriptions and any pending request (RFC 6121 §2.5.2). */
  async function removeItem(session: ClientSession, jid: string, stanza: Element): Promise<void> {
    const user = session.jid.bare;
    const { result: removed } = await updateRoster(server, user, (roster) => {
      const item = roster.items.get(jid);
      if (!item) throw new StanzaError('item-not-found');
      roster.items.delete(jid);
      const pending = roster.pending.delete(jid);
      return { item, pending };
    });
    session.send(el('iq', { type: 'result', id: stanza.attrs.id, to: session.jid.toString() }));
    const { item, pending } = removed;
    if (item.subscription === 'to' || item.subscription === 'both' || item.ask) {
      server.router.route(el('presence', { type: 'unsubscribe', from: user, to: jid }));
    }
    if (item.subscription === 'from' || item.subscription === 'both' || pending) {
      server.router.route(el('presence', { type: 'unsubscribed', from: user, to: jid }));
    }
    if (item.subscription === 'from' || item.subscription === 'both') {
      // The contact no longer may see us: tell it we are gone (RFC 6121 §3.2.2).
      for (const s of server.sessions.available(user)) {
        server.router.route(el('presence', { type: 'unavailable', from: s.jid.toString(), to: jid }));
      }
    }
  }
};

/** Validates an item's name and groups (RFC 6121 §2.3.3). */
export function readItem(item: Element, maxLength: number): { name?: string; groups: string[] } {
  const name = item.attrs.name || undefined;
  if (name !== undefined && byteLength(name) > maxLength) {
    throw new StanzaError('not-acceptable', `item names are limited to ${maxLength} bytes`);
  }
  const groups: string[] = [];
  for (const g of item.getChildren('group')) {
    const text = g.getText();
    if (text === '') throw new StanzaError('not-acceptable', 'empty group name');
    if (byteLength(text) > maxLength)
      throw new StanzaError('not-acceptable', `group names are limited to ${maxLength} bytes`);
    if (groups.includes(text)) throw new StanzaError('bad-request', `duplicate group '${text}'`);
    groups.push(text);
  }
  return { name, groups };
}
