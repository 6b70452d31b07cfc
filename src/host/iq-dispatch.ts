// How iq get/set reach the module that owns their payload, as Prosody's
// mod_iq does it: the router fires the generic `iq/<type>` (or
// `pre-iq/<type>`) event, and this handler, at priority 0, fires the
// payload-specific `iq-get/<type>/<ns>:<name>` (`iq-set/...`). Filters that
// must see every iq (blocking) hook the generic event above 0 and run
// first; catch-alls hook it below 0 and run after.
import { firstChild } from '../xml/element.ts';
import type { EventBus } from './events.ts';
import type { StanzaEvent } from './host.ts';

const TYPES = ['self', 'bare', 'full', 'host'];

export function installIqDispatch(events: EventBus<StanzaEvent>): void {
  for (const prefix of ['', 'pre-']) {
    for (const type of TYPES) {
      events.hook(`${prefix}iq/${type}`, (event) => {
        const { stanza } = event;
        const kind = stanza.attrs.type;
        if (kind !== 'get' && kind !== 'set') return false;
        const payload = firstChild(stanza);
        if (!payload) return false;
        return events.fire(`${prefix}iq-${kind}/${type}/${payload.getNS()}:${payload.getName()}`, event);
      });
    }
  }
}
