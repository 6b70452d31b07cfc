// Message delivery to local users (RFC 6121 §8.5). To a bare JID, chat and
// normal messages go to the available resources with the highest
// non-negative priority (every one of them on a tie), or to offline storage
// when there is none; headlines go to every non-negative resource or
// nowhere. To a full JID, the bound resource gets it; otherwise chat and
// normal fall back to the bare JID. Carbons are sent after delivery, when it
// is known which resources got the original.
import type { Module, StanzaEvent } from '../host/host.ts';
import type { ClientSession } from '../host/session.ts';
import { KeyedMutex } from '../util/keyed-mutex.ts';
import { StanzaError } from '../xml/errors.ts';
import { receivedCarbon, sendCarbons } from './carbons.ts';

export const messageModule: Module = (host) => {
  const { server } = host;
  // Storing is async; one queue per user keeps stored messages in arrival order.
  const storing = new KeyedMutex();

  const deliver = (event: StanzaEvent, targets: ClientSession[]) => {
    const carbon = receivedCarbon(event);
    for (const session of targets) session.send(event.stanza);
    if (carbon) sendCarbons(server, event.to.bare, carbon, targets);
  };

  const refuse = (event: StanzaEvent): true => {
    server.router.bounce(event.stanza, 'service-unavailable');
    return true;
  };

  const toBare = (event: StanzaEvent): true | Promise<void> => {
    const { stanza, to } = event;
    const type = stanza.attrs.type ?? 'normal';
    if (type === 'error') return true;
    if (type === 'groupchat') return refuse(event);
    const available = server.sessions.available(to.bare).filter((s) => s.priority >= 0);
    if (type === 'headline') {
      // Headlines are not worth storing: they go to everyone online or nobody.
      deliver(event, available);
      return true;
    }
    const top = Math.max(...available.map((s) => s.priority));
    const targets = available.filter((s) => s.priority === top);
    if (targets.length > 0) {
      deliver(event, targets);
      return true;
    }
    // Bound resources that are not available (or negative) still get carbons.
    const carbon = receivedCarbon(event);
    return storing.run(to.bare, async () => {
      if (!(await server.accounts.exists(to.local))) throw new StanzaError('service-unavailable');
      // The offline module stores it, or throws when the user's storage is full.
      const stored = host.events.fire('message/offline', event);
      if (stored === false) throw new StanzaError('service-unavailable');
      await stored;
      if (carbon) sendCarbons(server, to.bare, carbon, []);
    });
  };

  const toFull = (event: StanzaEvent): true | Promise<void> => {
    const session = server.sessions.get(event.to);
    if (session) {
      deliver(event, [session]);
      return true;
    }
    const type = event.stanza.attrs.type ?? 'normal';
    if (type === 'chat' || type === 'normal') return toBare(event);
    if (type === 'groupchat') return refuse(event);
    return true; // headline and error: silently ignored (RFC 6121 §8.5.3.2.1)
  };

  // Below the modules that filter or consume messages first (blocking at 100).
  host.hook('message/bare', toBare, -1);
  host.hook('message/full', toFull, -1);
};
