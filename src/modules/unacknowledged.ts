// What becomes of stanzas a client never acknowledged (XEP-0198 §4: as if
// they had been sent to an unavailable resource) when its stream-managed
// session ends for good: the c2s session fires `delivery/failure` for each,
// after the session left the registry. Messages from others go to the
// user's other resources that take bare-JID messages (unless carbons
// already gave them a copy), else to offline storage (a full one bounces
// them); groupchat messages and iq requests bounce with
// recipient-unavailable. Presence, headlines, errors, iq results and what
// the user's own account sent (carbons, archive results, PEP
// notifications) are state a client fetches again: dropped.
import type { Module, StanzaEvent } from '../host/host.ts';
import { StanzaError } from '../xml/errors.ts';
import { carbonsEnabled } from './carbons.ts';

export const unacknowledgedModule: Module = (host) => {
  const { server } = host;

  host.hook('delivery/failure', (event: StanzaEvent) => {
    const { stanza, to, from } = event;
    const gone = 'the client went away before acknowledging it';
    if (stanza.name === 'iq') {
      const type = stanza.attrs.type;
      if (type === 'get' || type === 'set') server.router.bounce(stanza, 'recipient-unavailable', gone);
      return true;
    }
    const type = stanza.attrs.type ?? 'normal';
    if (stanza.name !== 'message' || type === 'error' || type === 'headline') return true;
    if (from.bare === to.bare || from.toString() === to.domain) return true;
    if (type === 'groupchat') {
      server.router.bounce(stanza, 'recipient-unavailable', gone);
      return true;
    }
    const available = server.sessions.available(to.bare).filter((s) => s.priority >= 0);
    if (available.length) {
      const top = Math.max(...available.map((s) => s.priority));
      for (const s of available) if (s.priority === top && !carbonsEnabled(s)) s.send(stanza);
      return true;
    }
    // The offline module stores it (with a delay stamp), or throws when storage is full.
    const offline: StanzaEvent = { ...event, to: to.toBare() };
    const stored = host.events.fire('message/offline', offline);
    if (stored === false) return Promise.reject(new StanzaError('recipient-unavailable', gone));
    return stored;
  });
};
