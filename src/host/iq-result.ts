// The result of an iq a module answers itself (for the host, or on behalf
// of an account). It comes from the address the request went to; a request
// without 'to' was for the sender's own account, so its bare JID answers
// (RFC 6120 §8.1.2.1).
import { type Element, el } from '../xml/element.ts';
import type { StanzaEvent } from './host.ts';

export function sendResult(event: StanzaEvent, payload?: Element): void {
  const { stanza } = event;
  const result = el(
    'iq',
    { type: 'result', id: stanza.attrs.id, to: stanza.attrs.from, from: event.to.toString() },
    payload,
  );
  event.host.server.router.route(result);
}
