// XEP-0191 Blocking Command. A user's blocklist is edited with iqs to their
// own account (changes pushed to the resources that fetched the list), and
// enforced both ways: stanzas from a blocked JID never reach the user (the
// user appears offline: messages and iq get/set get service-unavailable,
// the rest is dropped), and the user's own stanzas to a blocked JID are
// refused with not-acceptable + <blocked/>.
import type { Module, StanzaEvent } from '../host/host.ts';
import { sendResult } from '../host/iq-result.ts';
import type { ClientSession } from '../host/session.ts';
import { Jid } from '../jid/jid.ts';
import { BlocklistStore } from '../storage/blocklist.ts';
import { RosterStore } from '../storage/roster.ts';
import { clone, type Element, el } from '../xml/element.ts';
import { errorReply, StanzaError } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';

const REQUESTED = 'blocklist-requested';
// Ahead of every module that delivers or consumes stanzas (as in Prosody).
const PRIORITY = 100;

export const blockingModule: Module = async (host) => {
  const { server } = host;
  const store = server.store(BlocklistStore);
  await store.load();
  host.features.add(NS.blocking);

  host.hook(`iq-get/self/${NS.blocking}:blocklist`, (event) => {
    if (event.origin.kind === 'c2s') event.origin.session.data.set(REQUESTED, true);
    const items = store.get(event.from.bare).map((jid) => el('item', { jid }));
    sendResult(event, el('blocklist', { xmlns: NS.blocking }, ...items));
    return true;
  });

  host.hook(`iq-set/self/${NS.blocking}:block`, async (event) => {
    const user = event.from.bare;
    const jids = itemJids(event.stanza);
    if (jids.length === 0) throw new StanzaError('bad-request', 'no item to block');
    const max = server.config.limits.blocklistMaxItems;
    const added = await store.block(user, jids, max);
    if (!added) throw new StanzaError('policy-violation', `a blocklist holds at most ${max} JIDs`);
    sendResult(event);
    if (added.length === 0) return;
    push(user, 'block', added);
    for (const jid of added) await appearOffline(user, jid);
  });

  host.hook(`iq-set/self/${NS.blocking}:unblock`, async (event) => {
    const user = event.from.bare;
    const jids = itemJids(event.stanza);
    const removed = await store.unblock(user, jids.length ? jids : null);
    sendResult(event);
    if (removed.length === 0) return;
    // An empty <unblock/> push means "everything" (XEP-0191 §3.5).
    push(user, 'unblock', jids.length ? removed : []);
    for (const jid of removed) await showPresence(user, jid);
  });

  /** Normalised item JIDs of a block/unblock request; jid-malformed on a bad one. */
  const itemJids = (stanza: Element): string[] => {
    const jids = stanza
      .getChildElements()[0]!
      .getChildren('item')
      .map((item) => {
        const jid = Jid.tryParse(item.attrs.jid);
        if (!jid) throw new StanzaError('jid-malformed', `invalid item JID '${item.attrs.jid ?? ''}'`);
        return jid.toString();
      });
    return [...new Set(jids)];
  };

  /** Tells the resources that fetched the list what changed (XEP-0191 §3.3). */
  const push = (user: string, action: 'block' | 'unblock', jids: string[]) => {
    for (const session of server.sessions.resources(user)) {
      if (!session.data.get(REQUESTED)) continue;
      const items = jids.map((jid) => el('item', { jid }));
      session.send(
        el(
          'iq',
          { type: 'set', id: `push-${Math.random().toString(36).slice(2)}`, to: session.jid.toString() },
          el(action, { xmlns: NS.blocking }, ...items),
        ),
      );
    }
  };

  /**
   * A newly blocked contact that could see the user's presence sees them go
   * offline; an unblocked one gets the current presence back (XEP-0191 §3.3,
   * §3.4). Best effort: a failure is logged, the command has succeeded.
   */
  const appearOffline = (user: string, jid: string) =>
    ifSubscribed(user, jid, (session) =>
      el('presence', { type: 'unavailable', from: session.jid.toString(), to: jid }),
    );
  const showPresence = (user: string, jid: string) =>
    ifSubscribed(user, jid, (session) => {
      const presence = clone(session.presence!);
      presence.attrs.from = session.jid.toString();
      presence.attrs.to = jid;
      return presence;
    });
  const ifSubscribed = async (user: string, jid: string, presenceOf: (s: ClientSession) => Element) => {
    try {
      const sub = (await server.store(RosterStore).getItem(user, jid))?.subscription;
      if (sub !== 'from' && sub !== 'both') return;
      for (const session of server.sessions.available(user)) server.router.route(presenceOf(session));
    } catch (err) {
      host.log.warn('blocking: presence update failed', { user, jid, error: String(err) });
    }
  };

  // Inbound: from a JID the recipient blocked.
  const inbound = (event: StanzaEvent) => {
    const { stanza, from, to } = event;
    if (from.bare === to.bare || !store.isBlocked(to.bare, from)) return false;
    const type = stanza.attrs.type ?? (stanza.name === 'message' ? 'normal' : undefined);
    const answer =
      (stanza.name === 'iq' && (type === 'get' || type === 'set')) ||
      (stanza.name === 'message' && (type === 'normal' || type === 'chat'));
    if (answer) server.router.bounce(stanza, 'service-unavailable');
    return true;
  };

  // Presence the server sends on a user's behalf (broadcasts, probes and
  // their answers) skips the pre- events; a local contact the user blocked
  // still must not get it. Unavailable passes: it is what blocking shows.
  const routedPresence = (event: StanzaEvent) => {
    const { stanza, from, to } = event;
    if (stanza.attrs.type === 'unavailable' || from.domain !== host.name || from.bare === to.bare)
      return false;
    return store.isBlocked(from.bare, to);
  };

  // Outbound: the user's own client sending to a JID they blocked.
  const outbound = (event: StanzaEvent) => {
    const { stanza, origin, from, to } = event;
    if (origin.kind !== 'c2s' || !store.isBlocked(from.bare, to)) return false;
    const type = stanza.attrs.type;
    if (type !== 'error' && !(stanza.name === 'iq' && type === 'result')) {
      // Straight to the session: routed, the error would come "from" the
      // blocked JID and be dropped as inbound.
      const err = new StanzaError(
        'not-acceptable',
        undefined,
        'cancel',
        el('blocked', { xmlns: NS.blockingErrors }),
      );
      origin.session.send(errorReply(stanza, err));
    }
    return true;
  };

  for (const kind of ['message', 'presence', 'iq']) {
    for (const type of ['bare', 'full']) host.hook(`${kind}/${type}`, inbound, PRIORITY);
    for (const type of ['bare', 'full', 'host']) host.hook(`pre-${kind}/${type}`, outbound, PRIORITY);
  }
  for (const type of ['bare', 'full']) host.hook(`presence/${type}`, routedPresence, PRIORITY - 1);
};
