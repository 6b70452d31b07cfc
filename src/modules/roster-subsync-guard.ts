// PyMSNt's roster-subsync payload asks a client to mirror a legacy contact
// list, so a forged one could slip a stranger into a roster. Before a
// subscription presence reaches a local user, the server strips any
// roster-subsync payload that does not come from a gateway the user
// registered with: the in-process MSN transport (when the user has a
// registration) or another gateway the user has in the roster as a
// subscribed domain contact.
import type { Module, StanzaEvent } from '../host/host.ts';
import { MsnRegistrationStore } from '../storage/msn-registrations.ts';
import { RosterStore } from '../storage/roster.ts';
import { inboundPresenceOrder } from './presence.ts';
import { NS } from '../xml/namespaces.ts';

export const rosterSubsyncGuardModule: Module = (host) => {
  const server = host.server;
  // Stanzas already judged, so the re-routed stanza passes straight through.
  const checked = new WeakSet<object>();

  async function trusted(user: string, fromDomain: string): Promise<boolean> {
    if (server.config.msn.enabled && fromDomain === server.config.msn.domain) {
      return (await server.store(MsnRegistrationStore).get(user)) !== undefined;
    }
    const gateway = await server.store(RosterStore).getItem(user, fromDomain);
    return gateway?.subscription === 'to' || gateway?.subscription === 'both';
  }

  const guard = (e: StanzaEvent) => {
    const x = e.stanza.getChild('x', NS.rosterSubsync);
    if (!x) return false;
    // Decided asynchronously, after the subscription stanzas that arrived
    // before it (the user's own "subscribed" from the gateway may still be
    // on its way into the roster), then the stanza continues down the chain.
    return inboundPresenceOrder(server).run(e.to.bare, () => trusted(e.to.bare, e.from.domain)).then((ok) => {
      if (!ok) {
        e.stanza.remove(x);
        host.log.info('stripped an untrusted roster-subsync payload', { user: e.to.bare, from: e.from.toString() });
      }
      checked.add(e.stanza);
      server.router.route(e.stanza, e.origin);
    });
  };
  // Runs before presence processing.
  for (const type of ['bare', 'full']) {
    host.hook(`presence/${type}`, (e) => (checked.has(e.stanza) ? false : guard(e)), 100);
  }
};
