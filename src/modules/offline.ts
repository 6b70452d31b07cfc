// Offline messages (XEP-0160): chat and normal messages for a user with no
// available resource are stored (the message module fires `message/offline`)
// stamped with when they arrived (XEP-0203), and handed to the first
// resource that becomes available with a non-negative priority.
import type { Module, StanzaEvent } from '../host/host.ts';
import type { ClientSession } from '../host/session.ts';
import { stanzaIdBy } from '../mam/stanza-id.ts';
import { OfflineStore } from '../storage/offline.ts';
import { detached } from '../stream/inbound-context.ts';
import { clone, el } from '../xml/element.ts';
import { StanzaError } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';

const HINTS = 'urn:xmpp:hints';

/**
 * Session data flag set by Bind2 (c2s/sasl2.ts) when the archive is on: the
 * client gets its missed messages from the archive, so offline messages the
 * archive holds are removed without being sent; the others are sent.
 */
export const OFFLINE_FROM_ARCHIVE = 'offline-from-archive';

export const offlineModule: Module = (host) => {
  const store = host.server.store(OfflineStore);
  host.features.add(NS.offline);

  host.hook('message/offline', (event: StanzaEvent) => {
    const { stanza, to } = event;
    // Not stored: what the sender marked so (XEP-0334), and chat state
    // notifications alone, which only mean something live (XEP-0160 §4).
    if (stanza.getChild('no-store', HINTS)) return true;
    if (!stanza.getChild('body') && stanza.getChildElements().some((c) => c.getNS() === NS.chatStates))
      return true;
    const stored = clone(stanza);
    stored.cnode(
      el('delay', { xmlns: NS.delay, from: host.name, stamp: new Date().toISOString() }, 'Offline Storage'),
    );
    return store.add(to.bare, stored).then((added) => {
      // A full queue is answered like a recipient that cannot take messages (XEP-0160 §3).
      if (!added) throw new StanzaError('service-unavailable', 'offline message storage is full');
      // The user may have come online while the message was being stored,
      // after that resource's own flush: hand it over now, not at the next login.
      const ready = host.server.sessions.available(to.bare).filter(receiving);
      if (ready.length) flush(ready.reduce((a, b) => (b.priority > a.priority ? b : a)));
    });
  });

  // Runs before the presence module and reads what it decided right after
  // (it sets session.presence and priority synchronously): a resource that
  // starts taking bare-JID messages gets what was stored for them.
  const receiving = (s: ClientSession) => s.presence !== null && s.priority >= 0;
  host.hook(
    'pre-presence/self',
    ({ origin }: StanzaEvent) => {
      if (origin.kind !== 'c2s') return false;
      const session = origin.session;
      const before = receiving(session);
      queueMicrotask(() => {
        if (!before && receiving(session)) flush(session);
      });
      return false;
    },
    10,
  );

  // Messages are removed only once they reached the client's transport
  // (after whatever the session's earlier stanzas wait for), a batch at a
  // time, each once the client has read enough of the previous one: a big
  // backlog never piles up in memory for a slow reader. Runs outside the
  // stanza's context: it waits for the session's own output, so it must not
  // be part of what that output waits for.
  const batchBytes = host.server.config.limits.outboundQueueSize / 2;
  const flush = (session: ClientSession) =>
    detached(() => {
      const current = () => host.server.sessions.get(session.jid) === session;
      store
        .drain(
          session.jid.bare,
          async (messages) => {
            if (!current()) return false;
            // A Bind2 client syncs from the archive (XEP-0386 §3): what is there is not sent twice.
            const fromArchive = session.data.get(OFFLINE_FROM_ARCHIVE) === true;
            for (const m of messages) if (!fromArchive || !stanzaIdBy(m, session.jid.bare)) session.send(m);
            return (await session.whenSent()) && (await session.whenWritable()) && current();
          },
          batchBytes,
        )
        .catch((err) =>
          host.log.error('offline delivery failed', { user: session.jid.bare, error: String(err) }),
        );
    });
};
