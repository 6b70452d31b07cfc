// XEP-0060 errors: an RFC 6120 condition plus, where the XEP names one, a
// pubsub-specific condition (http://jabber.org/protocol/pubsub#errors).
import { el } from '../xml/element.ts';
import { StanzaError, type StanzaErrorCondition } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';

export type PubsubCondition =
  | 'closed-node'
  | 'configuration-required'
  | 'invalid-jid'
  | 'invalid-options'
  | 'invalid-payload'
  | 'item-forbidden'
  | 'item-required'
  | 'jid-required'
  | 'max-items-exceeded'
  | 'max-nodes-exceeded'
  | 'nodeid-required'
  | 'not-in-roster-group'
  | 'not-subscribed'
  | 'payload-too-big'
  | 'payload-required'
  | 'pending-subscription'
  | 'precondition-not-met'
  | 'presence-subscription-required'
  | 'subid-required'
  | 'unsupported';

export function pubsubError(
  condition: StanzaErrorCondition,
  pubsubCondition?: PubsubCondition,
  text?: string,
  feature?: string,
): StanzaError {
  const extra = pubsubCondition ? el(pubsubCondition, { xmlns: NS.pubsubErrors, feature }) : undefined;
  return new StanzaError(condition, text, undefined, extra);
}

/** feature-not-implemented with <unsupported feature='...'/> (XEP-0060 §7.1.3.x). */
export function unsupported(feature: string, text?: string): StanzaError {
  return pubsubError('feature-not-implemented', 'unsupported', text ?? `${feature} is not supported`, feature);
}
