// Recognising negotiation elements on s2s streams. Dialback elements use the
// `db:` prefix declared on the stream header (XEP-0220), so the stream
// parser hands them over by prefixed name; a peer may instead declare the
// namespace on the element itself.
import { Jid } from '../jid/jid.ts';
import type { Element } from '../xml/element.ts';
import { NS } from '../xml/namespaces.ts';

export function isDialback(el: Element, name: 'result' | 'verify'): boolean {
  return el.name === `db:${name}` || (el.name === name && el.attrs.xmlns === NS.dialback);
}

export function isStreamElement(el: Element, name: 'features' | 'error'): boolean {
  return el.name === `stream:${name}` || (el.name === name && el.attrs.xmlns === NS.stream);
}

export function isStanza(el: Element): boolean {
  return el.name === 'message' || el.name === 'presence' || el.name === 'iq';
}

/** The domain part of an s2s dialback/SASL address, lowercased; null if unusable. */
export function domainAttr(value: string | undefined): string | null {
  const jid = Jid.tryParse(value);
  return jid && !jid.local && !jid.resource ? jid.domain : null;
}
