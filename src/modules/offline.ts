// Offline messages (XEP-0160): chat and normal messages for a user with no
// available resource are stored (the message module fires `message/offline`)
// stamped with when they arrived (XEP-0203), and handed to the first
// resource that becomes available with a non-negative priority.
import type { Module, StanzaEvent } from '../host/host.ts';
import type { ClientSession } from '../host/session.ts';
import { OfflineStore } from '../storage/offline.ts';
import { clone, el } from '../xml/element.ts';
import { StanzaError } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';

const HINTS = 'urn:xmpp:hints';

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
    });
  });

  // Runs before the presence module updates the session, so it can tell
  // that this presence is what makes the resource available (RFC 6121 §4.2).
  host.hook(
    'pre-presence/self',
    (event: StanzaEvent) => {
      const { stanza, origin } = event;
      if (origin.kind !== 'c2s' || stanza.attrs.type !== undefined || stanza.attrs.to) return false;
      const session = origin.session;
      const wasReceiving = session.presence !== null && session.priority >= 0;
      if (!wasReceiving && priorityOf(stanza.getChildText('priority')) >= 0) flush(session);
      return false;
    },
    10,
  );

  const flush = (session: ClientSession) => {
    store
      .drain(session.jid.bare, (messages) => {
        if (host.server.sessions.get(session.jid) !== session) return false;
        for (const m of messages) session.send(m);
        return true;
      })
      .catch((err) =>
        host.log.error('offline delivery failed', { user: session.jid.bare, error: String(err) }),
      );
  };
};

/** RFC 6121 §4.7.2.3: an integer from -128 to 127, 0 when absent. */
function priorityOf(text: string | null): number {
  const n = Number.parseInt(text ?? '0', 10);
  return Number.isNaN(n) ? 0 : n;
}
