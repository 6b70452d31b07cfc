// What a client never acknowledged when its session ends for good (its
// XEP-0198 resumption window closed, or a session handed to another cluster
// node could not continue there): each stanza fires `delivery/failure` on
// the user's host (modules/unacknowledged.ts stores messages offline);
// what no handler takes bounces, except errors, results and presence.
import type { Host } from '../host/host.ts';
import type { Origin } from '../host/session.ts';
import { Jid } from '../jid/jid.ts';
import type { Router } from '../router/router.ts';
import type { Element } from '../xml/element.ts';

/** Hands the stanzas back one after the other; resolves once every handler's work is done. */
export async function handBackUnacknowledged(
  host: Host,
  router: Router,
  to: Jid,
  origin: Origin,
  stanzas: Element[],
): Promise<void> {
  for (const stanza of stanzas) {
    const from = Jid.tryParse(stanza.attrs.from) ?? Jid.of('', host.name);
    let result: ReturnType<typeof host.events.fire>;
    try {
      result = host.events.fire('delivery/failure', { stanza, origin, host, to, from });
    } catch (err) {
      result = Promise.reject(err);
    }
    if (result === false) {
      const type = stanza.attrs.type;
      if (type !== 'error' && type !== 'result' && stanza.name !== 'presence')
        router.bounce(stanza, 'recipient-unavailable', 'the client went away');
    } else if (result instanceof Promise) {
      await result.catch((err) => router.replyError(stanza, err));
    }
  }
}
