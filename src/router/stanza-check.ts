// The shape rules of RFC 6120 §8 that hold for every stanza, whatever its
// payload: an iq has an id and one of the four types, a get or set carries
// exactly one payload element, a result at most one, and message and
// presence types come from their enumerations (the jabber:client schema,
// RFC 6120 Appendix A.5). A stanza that breaks them is answered with
// bad-request (§8.3.3.1) before any module sees it, so no module has to
// guess what a missing id or an unknown type was meant to be.
import type { Element } from '../xml/element.ts';
import { StanzaError } from '../xml/errors.ts';

const IQ_TYPES = new Set(['get', 'set', 'result', 'error']);
const MESSAGE_TYPES = new Set(['chat', 'error', 'groupchat', 'headline', 'normal']);
const PRESENCE_TYPES = new Set([
  'error',
  // XEP-0018's invisible presence, which transports understand (the presence
  // module refuses it everywhere but toward a gateway).
  'invisible',
  'probe',
  'subscribe',
  'subscribed',
  'unavailable',
  'unsubscribe',
  'unsubscribed',
]);

/** Why a stanza is malformed, or null when its shape is fine. */
export function checkStanzaShape(stanza: Element): StanzaError | null {
  const type = stanza.attrs.type;
  if (stanza.name === 'iq') {
    // (Except an error: the one answering an iq that had no id cannot have one.)
    if (!stanza.attrs.id && type !== 'error') return new StanzaError('bad-request', 'an iq needs an id');
    if (type === undefined || !IQ_TYPES.has(type)) {
      return new StanzaError('bad-request', 'an iq type is get, set, result or error');
    }
    const payloads = stanza.children.filter((c) => typeof c !== 'string').length;
    if ((type === 'get' || type === 'set') && payloads !== 1) {
      return new StanzaError('bad-request', `an iq ${type} holds exactly one payload element`);
    }
    if (type === 'result' && payloads > 1) return new StanzaError('bad-request', 'an iq result holds at most one element');
    return null;
  }
  if (type === undefined) return null;
  if (stanza.name === 'message' && !MESSAGE_TYPES.has(type)) {
    return new StanzaError('bad-request', `unknown message type '${type}'`);
  }
  if (stanza.name === 'presence' && !PRESENCE_TYPES.has(type)) {
    return new StanzaError('bad-request', `unknown presence type '${type}'`);
  }
  return null;
}
