// Stanza errors (RFC 6120 §8.3) and stream errors (§4.9) as elements.
import { Element, el } from './element.ts';
import { NS } from './namespaces.ts';

export type ErrorType = 'auth' | 'cancel' | 'continue' | 'modify' | 'wait';

export type StanzaErrorCondition =
  | 'bad-request'
  | 'conflict'
  | 'feature-not-implemented'
  | 'forbidden'
  | 'gone'
  | 'internal-server-error'
  | 'item-not-found'
  | 'jid-malformed'
  | 'not-acceptable'
  | 'not-allowed'
  | 'not-authorized'
  | 'policy-violation'
  | 'recipient-unavailable'
  | 'redirect'
  | 'registration-required'
  | 'remote-server-not-found'
  | 'remote-server-timeout'
  | 'resource-constraint'
  | 'service-unavailable'
  | 'subscription-required'
  | 'undefined-condition'
  | 'unexpected-request';

/** The usual error type for each condition (RFC 6120 §8.3.3). */
const DEFAULT_TYPE: Record<StanzaErrorCondition, ErrorType> = {
  'bad-request': 'modify',
  conflict: 'cancel',
  'feature-not-implemented': 'cancel',
  forbidden: 'auth',
  gone: 'cancel',
  'internal-server-error': 'cancel',
  'item-not-found': 'cancel',
  'jid-malformed': 'modify',
  'not-acceptable': 'modify',
  'not-allowed': 'cancel',
  'not-authorized': 'auth',
  'policy-violation': 'modify',
  'recipient-unavailable': 'wait',
  redirect: 'modify',
  'registration-required': 'auth',
  'remote-server-not-found': 'cancel',
  'remote-server-timeout': 'wait',
  'resource-constraint': 'wait',
  'service-unavailable': 'cancel',
  'subscription-required': 'auth',
  'undefined-condition': 'cancel',
  'unexpected-request': 'wait',
};

/** A typed stanza error a handler can throw; the router turns it into a reply. */
export class StanzaError extends Error {
  constructor(
    readonly condition: StanzaErrorCondition,
    text?: string,
    readonly type: ErrorType = DEFAULT_TYPE[condition],
    readonly extra?: Element,
  ) {
    super(text ?? condition);
  }
  get text(): string | undefined {
    return this.message === this.condition ? undefined : this.message;
  }
}

export function errorElement(
  condition: StanzaErrorCondition,
  text?: string,
  type: ErrorType = DEFAULT_TYPE[condition],
  by?: string,
  extra?: Element,
): Element {
  return el(
    'error',
    { type, by },
    el(condition, { xmlns: NS.stanzas }),
    text ? el('text', { xmlns: NS.stanzas }, text) : null,
    extra,
  );
}

/**
 * The error reply to a stanza: to/from swapped, type="error", the original
 * payload kept for message/presence (RFC 6120 §8.3.1 allows it; clients use it
 * to match the failure) and for iq only the first child.
 */
export function errorReply(stanza: Element, err: StanzaError | StanzaErrorCondition, text?: string): Element {
  const e = typeof err === 'string' ? new StanzaError(err, text) : err;
  const reply = el(stanza.name, {
    to: stanza.attrs.from,
    from: stanza.attrs.to,
    id: stanza.attrs.id,
    type: 'error',
  });
  for (const c of stanza.children) {
    if (typeof c === 'string' || c.name === 'error') continue;
    reply.cnode(c.constructor === Element ? cloneShallowTree(c) : c);
    if (stanza.name === 'iq') break;
  }
  reply.cnode(errorElement(e.condition, e.text, e.type, undefined, e.extra));
  return reply;
}

function cloneShallowTree(e: Element): Element {
  const copy = new Element(e.name, e.attrs);
  for (const c of e.children) copy.cnode(typeof c === 'string' ? c : cloneShallowTree(c));
  return copy;
}

export type StreamErrorName =
  | 'bad-format'
  | 'bad-namespace-prefix'
  | 'conflict'
  | 'connection-timeout'
  | 'host-gone'
  | 'host-unknown'
  | 'improper-addressing'
  | 'internal-server-error'
  | 'invalid-from'
  | 'invalid-namespace'
  | 'invalid-xml'
  | 'not-authorized'
  | 'not-well-formed'
  | 'policy-violation'
  | 'remote-connection-failed'
  | 'reset'
  | 'resource-constraint'
  | 'restricted-xml'
  | 'see-other-host'
  | 'system-shutdown'
  | 'undefined-condition'
  | 'unsupported-encoding'
  | 'unsupported-feature'
  | 'unsupported-stanza-type'
  | 'unsupported-version';

export function streamErrorElement(condition: StreamErrorName, text?: string, seeOther?: string): Element {
  return el(
    'stream:error',
    null,
    el(condition, { xmlns: NS.streams }, seeOther ?? null),
    text ? el('text', { xmlns: NS.streams }, text) : null,
  );
}
