// Presence (RFC 6121 §3–4), after Prosody's mod_presence.
//
// Outbound, from a local client: presence without `to` is broadcast to the
// contacts subscribed to the user (from/both) and to the user's own available
// resources; the first one also probes the contacts the user is subscribed to
// and re-delivers unanswered subscription requests. Subscription stanzas
// update the user's roster, are stamped with the bare JID and routed.
// Directed presence is remembered so its recipients learn when the resource
// goes away, however it goes away (resource-unbind covers dropped sockets).
//
// Inbound, to a local user: subscription stanzas update the user's roster
// (or the pending requests), probes are answered with the last presence of
// each available resource, and everything else reaches the available
// resources (bare JID) or the one addressed (full JID).
//
// `session.presence` is the last available presence (null while unavailable)
// and `session.priority` its priority: message delivery relies on both.
import type { Host, Module, StanzaEvent } from '../host/host.ts';
import type { ClientSession } from '../host/session.ts';
import { Jid } from '../jid/jid.ts';
import { BlocklistStore } from '../storage/blocklist.ts';
import { type PendingRequest, type Roster, RosterStore } from '../storage/roster.ts';
import { KeyedMutex } from '../util/keyed-mutex.ts';
import { clone, type Element, el } from '../xml/element.ts';
import { StanzaError } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';
import { isLocalGateway, outboundPresenceFor } from './invisible.ts';
import { itemFor, updateRoster } from './roster.ts';

const SUBSCRIPTION_TYPES = new Set(['subscribe', 'subscribed', 'unsubscribe', 'unsubscribed']);
const DIRECTED = 'presence:directed';
// The session took over the presence of the one it replaced (same full JID).
const INHERITED = 'presence:inherited';

/** RFC 6121 §4.7.2.3: an integer in -128..127; anything unreadable counts as 0. */
function priorityOf(stanza: Element): number {
  const text = stanza.getChildText('priority')?.trim();
  if (!text || !/^[+-]?\d+$/.test(text)) return 0;
  return Math.max(-128, Math.min(127, Number.parseInt(text, 10)));
}

/** Full JIDs this session sent directed presence to (RFC 6121 §4.6). */
function directedOf(session: ClientSession): Set<string> {
  let set = session.data.get(DIRECTED) as Set<string> | undefined;
  if (!set) {
    set = new Set();
    session.data.set(DIRECTED, set);
  }
  return set;
}

function subscribedTo(roster: Roster): string[] {
  return [...roster.items.values()]
    .filter((i) => i.subscription === 'to' || i.subscription === 'both')
    .map((i) => i.jid);
}

function subscribers(roster: Roster): string[] {
  return [...roster.items.values()]
    .filter((i) => i.subscription === 'from' || i.subscription === 'both')
    .map((i) => i.jid);
}

/** A copy of `stanza` (children untouched) with new addresses. */
function readdress(stanza: Element, from: string, to: string): Element {
  const copy = clone(stanza);
  copy.attrs.from = from;
  copy.attrs.to = to;
  return copy;
}

function pendingRequestElement(p: PendingRequest, to: string): Element {
  return el(
    'presence',
    { type: 'subscribe', from: p.jid, to },
    p.status !== undefined ? el('status', null, p.status) : null,
    p.nick !== undefined ? el('nick', { xmlns: NS.nick }, p.nick) : null,
  );
}

const inboundOrders = new WeakMap<object, KeyedMutex>();

/**
 * The per-user order in which inbound subscription stanzas are handled, so
 * a module that must judge one against the roster (the roster-subsync
 * guard) decides only after the stanzas that came before it changed it.
 */
export function inboundPresenceOrder(server: object): KeyedMutex {
  let order = inboundOrders.get(server);
  if (!order) {
    order = new KeyedMutex();
    inboundOrders.set(server, order);
  }
  return order;
}

export const presenceModule: Module = (host: Host) => {
  const server = host.server;
  const store = server.store(RosterStore);
  const blocklist = server.store(BlocklistStore);
  // Presence the server sends for a user never reaches a JID that user
  // blocked (XEP-0191 §3.3), remote ones included; unavailable still does.
  const route = (stanza: Element) => {
    const from = Jid.tryParse(stanza.attrs.from);
    const to = Jid.tryParse(stanza.attrs.to);
    if (from && to && from.domain === host.name && stanza.attrs.type !== 'unavailable' && blocklist.isBlocked(from.bare, to)) {
      return;
    }
    server.router.route(stanza);
  };
  // One session's presence work runs in the order the client sent it, and
  // one user's inbound subscription stanzas in the order they arrived.
  const inOrder = new KeyedMutex();
  const inboundOrder = inboundPresenceOrder(server);

  /** Sends each available resource's presence (or `override`) to `to`; returns how many. */
  function sendPresenceOf(user: string, to: string, override?: Element): number {
    let sent = 0;
    for (const s of server.sessions.available(user)) {
      // An invisible resource (XEP-0186) is not revealed.
      const presence = outboundPresenceFor(server, s, to, override ?? s.presence!);
      if (!presence) continue;
      route(readdress(presence, s.jid.toString(), to));
      sent++;
    }
    return sent;
  }

  /** Delivers to every available resource of a local user, still addressed to the bare JID. */
  function toAvailable(user: string, stanza: Element): void {
    for (const s of server.sessions.available(user)) s.send(clone(stanza));
  }

  // ---- Outbound: presence from a local client ----

  host.hook('pre-presence/self', ({ stanza, origin }) => {
    if (origin.kind !== 'c2s') return false;
    const type = stanza.attrs.type;
    if (stanza.attrs.to !== undefined) {
      // To the user's own bare JID: subscriptions to oneself mean nothing;
      // other presence reaches the user's available resources.
      return SUBSCRIPTION_TYPES.has(type ?? '') || type === 'probe';
    }
    if (type === undefined) return available(origin.session, stanza);
    if (type === 'unavailable') return unavailable(origin.session, stanza);
    if (type === 'error') return true;
    return Promise.reject(new StanzaError('bad-request', 'broadcast presence is available or unavailable'));
  });

  for (const dest of ['bare', 'full', 'host']) {
    host.hook(`pre-presence/${dest}`, (event) => {
      if (event.origin.kind !== 'c2s') return false;
      const { stanza, to } = event;
      const type = stanza.attrs.type;
      if (type === undefined || type === 'unavailable') {
        const session = event.origin.session;
        // The user's own resources hear the broadcast anyway.
        if (to.bare === session.jid.bare) return false;
        const directed = directedOf(session);
        if (type === undefined) directed.add(to.toString());
        else directed.delete(to.toString());
        return false;
      }
      if (SUBSCRIPTION_TYPES.has(type)) return outboundSubscription(event.origin.session, stanza, to);
      if (type === 'probe' || type === 'error') return false;
      // Invisible directed at a gateway here: appear offline on its network (XEP-0018's form, which PyMSNt took).
      if (type === 'invisible' && isLocalGateway(server, to.toString())) return false;
      return Promise.reject(new StanzaError('bad-request', `unknown presence type '${type}'`));
    });
  }

  function available(session: ClientSession, stanza: Element): Promise<void> {
    const initial = session.presence === null || session.data.get(INHERITED) === true;
    session.data.delete(INHERITED);
    const presence = clone(stanza);
    presence.attrs.from = session.jid.toString();
    delete presence.attrs.to;
    // Set now, not after storage: stanzas that follow see the new state.
    session.presence = presence;
    session.priority = priorityOf(stanza);
    const user = session.jid.bare;
    return inOrder.run(session.id, async () => {
      const roster = await store.get(user);
      const from = session.jid.toString();
      for (const jid of subscribers(roster)) {
        const out = outboundPresenceFor(server, session, jid, presence);
        if (out) route(readdress(out, from, jid));
      }
      // Every available resource hears it, the sender included (RFC 6121 §4.2.2).
      for (const s of server.sessions.available(user)) route(readdress(presence, from, s.jid.toString()));
      if (!initial) return;
      for (const jid of subscribedTo(roster)) route(el('presence', { type: 'probe', from: user, to: jid }));
      for (const s of server.sessions.available(user)) {
        if (s !== session) session.send(readdress(s.presence!, s.jid.toString(), from));
      }
      for (const p of roster.pending.values()) session.send(pendingRequestElement(p, user));
    });
  }

  function unavailable(session: ClientSession, stanza: Element, reflect = true): Promise<void> {
    const wasAvailable = session.presence !== null;
    session.presence = null;
    session.priority = 0;
    const directed = directedOf(session);
    const recipients = [...directed];
    directed.clear();
    const user = session.jid.bare;
    const from = session.jid.toString();
    return inOrder.run(session.id, async () => {
      const covered = new Set<string>();
      if (wasAvailable) {
        const roster = await store.get(user);
        for (const jid of subscribers(roster)) {
          covered.add(jid);
          route(readdress(stanza, from, jid));
        }
        for (const s of server.sessions.available(user)) route(readdress(stanza, from, s.jid.toString()));
        if (reflect) session.send(readdress(stanza, from, from));
      }
      for (const to of recipients) {
        if (!covered.has(to.split('/')[0]!)) route(readdress(stanza, from, to));
      }
    });
  }

  // A closed or dropped stream ends the resource's presence.
  host.sessionEvents.hook('resource-unbind', ({ session }) => {
    const hasDirected = (session.data.get(DIRECTED) as Set<string> | undefined)?.size;
    if (session.presence === null && !hasDirected) return;
    // Replaced by a new session with the same full JID (a client that logged
    // in again, or could not resume its stream): the new session carries the
    // presence on, so contacts see no unavailable/available pair; its own
    // first presence is still handled as an initial one.
    const successor = server.sessions.get(session.jid);
    if (successor && successor !== session && successor.presence === null) {
      successor.presence = session.presence;
      successor.priority = session.priority;
      for (const jid of directedOf(session)) directedOf(successor).add(jid);
      if (session.presence) successor.data.set(INHERITED, true);
      return;
    }
    unavailable(session, el('presence', { type: 'unavailable' }), false).catch((err) =>
      host.log.error('unavailable broadcast failed', { jid: session.jid.toString(), error: String(err) }),
    );
  });

  // Cluster: a session resumed here from another node made this node the
  // user's home node, where inbound presence to the user is handled (and
  // what is present to them kept, caps.ts). Nothing of it is here yet: the
  // contacts are probed again, as for an initial presence, but the user's
  // own presence is not broadcast (it never changed: nobody saw it go).
  // Not the services of this server (the MSN transport and its contacts):
  // they follow the home node themselves and announce themselves from it.
  host.sessionEvents.hook('user-home-gained', ({ session }) => {
    const user = session.jid.bare;
    if (server.sessions.available(user).length === 0) return;
    void store.get(user).then(
      (roster) => {
        for (const jid of subscribedTo(roster)) {
          const service = server.hosts.get(Jid.tryParse(jid)?.domain ?? '');
          if (service && !service.userHost) continue;
          route(el('presence', { type: 'probe', from: user, to: jid }));
        }
      },
      (err) => host.log.error('probing contacts on a new home node failed', { user, error: String(err) }),
    );
  });

  /** The user subscribes, approves, unsubscribes or refuses (RFC 6121 §3). */
  async function outboundSubscription(session: ClientSession, stanza: Element, to: Jid): Promise<void> {
    const user = session.jid.bare;
    const contact = to.bare;
    if (contact === user) return;
    const type = stanza.attrs.type;
    // Subscriptions are between bare JIDs (RFC 6121 §3.1.2).
    const outbound = readdress(stanza, user, contact);

    if (type === 'subscribe') {
      await updateRoster(server, user, (roster) => {
        const item = itemFor(server, roster, contact);
        if (item.subscription === 'none' || item.subscription === 'from') item.ask = 'subscribe';
      });
      return route(outbound);
    }

    if (type === 'subscribed') {
      const { result } = await updateRoster(server, user, (roster) => {
        const item = roster.items.get(contact);
        if (roster.pending.delete(contact)) {
          const approved = itemFor(server, roster, contact);
          if (approved.subscription === 'none') approved.subscription = 'from';
          else if (approved.subscription === 'to') approved.subscription = 'both';
          delete approved.approved;
          return 'approved';
        }
        if (item && (item.subscription === 'from' || item.subscription === 'both')) return 'already';
        // Approval before any request: remembered for when one comes (RFC 6121 §3.4).
        itemFor(server, roster, contact).approved = true;
        return 'pre-approved';
      });
      if (result !== 'approved') return;
      route(outbound);
      sendPresenceOf(user, contact);
      return;
    }

    if (type === 'unsubscribe') {
      await updateRoster(server, user, (roster) => {
        const item = roster.items.get(contact);
        if (!item) return;
        if (item.subscription === 'to') item.subscription = 'none';
        else if (item.subscription === 'both') item.subscription = 'from';
        delete item.ask;
      });
      return route(outbound);
    }

    // unsubscribed: refuse a request, cancel a pre-approval or revoke a subscription.
    const { result: revoked } = await updateRoster(server, user, (roster) => {
      roster.pending.delete(contact);
      const item = roster.items.get(contact);
      if (!item) return false;
      delete item.approved;
      const had = item.subscription === 'from' || item.subscription === 'both';
      if (item.subscription === 'from') item.subscription = 'none';
      else if (item.subscription === 'both') item.subscription = 'to';
      return had;
    });
    route(outbound);
    if (revoked) sendPresenceOf(user, contact, el('presence', { type: 'unavailable' }));
  }

  // ---- Inbound: presence to a local user ----

  function inbound(event: StanzaEvent, full: boolean): boolean | Promise<void> {
    const { stanza, to, from } = event;
    const type = stanza.attrs.type;
    if (SUBSCRIPTION_TYPES.has(type ?? '') || type === 'probe') {
      return inboundOrder.run(to.bare, () => inboundSubscription(stanza, to, from));
    }
    if (type !== undefined && type !== 'unavailable' && type !== 'error') {
      return Promise.reject(new StanzaError('bad-request', `unknown presence type '${type}'`));
    }
    if (!full) {
      toAvailable(to.bare, stanza);
      return true;
    }
    // A resource that is gone: presence to it is dropped (RFC 6121 §8.5.3.2.1).
    server.sessions.get(to)?.send(stanza);
    return true;
  }
  host.hook('presence/bare', (e) => inbound(e, false));
  host.hook('presence/full', (e) => inbound(e, true));

  async function inboundSubscription(stanza: Element, to: Jid, from: Jid): Promise<void> {
    const user = to.bare;
    const contact = from.bare;
    const type = stanza.attrs.type;
    if (contact === user) return;
    // Nothing is stored for accounts that do not exist (RFC 6121 §8.5.1).
    if (!(await server.accounts.exists(to.local))) {
      if (type === 'probe') route(el('presence', { type: 'unsubscribed', from: user, to: contact }));
      return;
    }
    const delivered = readdress(stanza, contact, user);

    if (type === 'probe') {
      const item = await store.getItem(user, contact);
      if (item?.subscription !== 'from' && item?.subscription !== 'both') {
        route(el('presence', { type: 'unsubscribed', from: user, to: contact }));
        return;
      }
      // Answers go to whoever probed (a resource or the bare JID).
      const prober = from.toString();
      if (sendPresenceOf(user, prober) === 0)
        route(el('presence', { type: 'unavailable', from: user, to: prober }));
      return;
    }

    if (type === 'subscribe') {
      const { result } = await updateRoster(server, user, (roster) => {
        const item = roster.items.get(contact);
        if (item && (item.subscription === 'from' || item.subscription === 'both')) return 'already';
        if (item?.approved) {
          item.subscription = item.subscription === 'to' ? 'both' : 'from';
          delete item.approved;
          return 'pre-approved';
        }
        const known = roster.pending.has(contact);
        if (!known && roster.pending.size >= server.config.limits.rosterMaxItems) {
          throw new StanzaError('policy-violation', 'too many subscription requests are waiting');
        }
        roster.pending.set(contact, {
          jid: contact,
          status: stanza.getChildText('status') ?? undefined,
          nick: stanza.getChild('nick', NS.nick)?.getText(),
        });
        return known ? 'repeated' : 'pending';
      });
      if (result === 'pending') toAvailable(user, delivered);
      if (result === 'already' || result === 'pre-approved') {
        route(el('presence', { type: 'subscribed', from: user, to: contact }));
        sendPresenceOf(user, contact);
      }
      return;
    }

    if (type === 'subscribed') {
      const { changed } = await updateRoster(server, user, (roster) => {
        const item = roster.items.get(contact);
        // Only an answer to our own request counts (RFC 6121 §3.1.6).
        if (item?.ask !== 'subscribe') return;
        item.subscription = item.subscription === 'from' ? 'both' : 'to';
        delete item.ask;
      });
      if (changed.length) toAvailable(user, delivered);
      return;
    }

    if (type === 'unsubscribe') {
      const { changed } = await updateRoster(server, user, (roster) => {
        roster.pending.delete(contact);
        const item = roster.items.get(contact);
        if (!item) return;
        if (item.subscription === 'from') item.subscription = 'none';
        else if (item.subscription === 'both') item.subscription = 'to';
        delete item.approved;
      });
      if (changed.length) {
        toAvailable(user, delivered);
        // The former subscriber must not keep a stale view (RFC 6121 §3.3.3).
        sendPresenceOf(user, contact, el('presence', { type: 'unavailable' }));
      }
      return;
    }

    // unsubscribed: the contact refused our request or revoked our subscription.
    const { changed } = await updateRoster(server, user, (roster) => {
      const item = roster.items.get(contact);
      if (!item) return;
      if (item.subscription === 'to') item.subscription = 'none';
      else if (item.subscription === 'both') item.subscription = 'from';
      delete item.ask;
    });
    if (changed.length) toAvailable(user, delivered);
  }
};
