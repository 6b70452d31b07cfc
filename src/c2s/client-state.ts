// XEP-0352 Client State Indication. While a client says it is inactive (a
// phone in a pocket), what it does not need at once is held back: presence
// updates (only the latest per sender is kept), chat states (the latest per
// sender), PEP and other pubsub notifications, receipts and read markers.
// Everything else — messages with a body or an encrypted payload, carbons
// and archive results of those, iqs, subscription requests, errors — is
// important: it flushes what was held (so the order the client sees is the
// order things happened) and goes out. <active/> flushes too, and so does a
// full buffer (csi.maxHeld). A resumed stream starts active (XEP-0352 §6).
import type { Element } from '../xml/element.ts';
import { NS } from '../xml/namespaces.ts';

const SUBSCRIPTION = new Set(['subscribe', 'subscribed', 'unsubscribe', 'unsubscribed', 'error']);
const PUBSUB_EVENT = 'http://jabber.org/protocol/pubsub#event';
const RECEIPTS = 'urn:xmpp:receipts';
const MARKERS = 'urn:xmpp:chat-markers:0';
const FORWARDING = new Set<string>([NS.carbons, NS.mam]);

export class ClientState {
  active = true;
  /** Held stanzas in arrival order; a newer presence or chat state from the same sender replaces the older. */
  private readonly held = new Map<string, Element>();
  private serial = 0;

  constructor(
    private readonly maxHeld: number,
    /** Writes a stanza on (into the durability barrier and stream management). */
    private readonly pass: (stanza: Element) => void,
  ) {}

  /** Takes a stanza for the client: holds it (inactive, unimportant) or passes it on. */
  send(stanza: Element): void {
    if (this.active) return this.pass(stanza);
    const kind = unimportant(stanza);
    if (kind === null) {
      this.flush();
      this.pass(stanza);
      return;
    }
    const key = kind === 'other' ? `other:${++this.serial}` : `${kind}:${stanza.attrs.from ?? ''}`;
    // Replacing keeps arrival order: the newer one goes to the end.
    this.held.delete(key);
    this.held.set(key, stanza);
    if (this.held.size >= this.maxHeld) this.flush();
  }

  setInactive(): void {
    this.active = false;
  }

  setActive(): void {
    this.active = true;
    this.flush();
  }

  get heldCount(): number {
    return this.held.size;
  }

  private flush(): void {
    if (this.held.size === 0) return;
    const out = [...this.held.values()];
    this.held.clear();
    for (const s of out) this.pass(s);
  }
}

/** 'presence' / 'chatstate' (latest per sender kept), 'other' (all kept), or null for important stanzas. */
export function unimportant(stanza: Element): 'presence' | 'chatstate' | 'other' | null {
  if (stanza.name === 'iq') return null;
  if (stanza.name === 'presence') return SUBSCRIPTION.has(stanza.attrs.type ?? '') ? null : 'presence';
  if (stanza.name !== 'message' || stanza.attrs.type === 'error') return null;
  let chatState = false;
  let other = false;
  for (const c of stanza.children) {
    if (typeof c === 'string') continue;
    const ns = c.attrs.xmlns;
    if (c.name === 'body' || c.name === 'subject') return null;
    if (c.name === 'thread' && ns === undefined) continue;
    if (ns === NS.chatStates) chatState = true;
    else if (ns === PUBSUB_EVENT || ns === RECEIPTS || ns === MARKERS || ns === NS.sid || ns === NS.hints) other = true;
    else if (FORWARDING.has(ns ?? '')) {
      // A carbon or archive result matters as much as the message it carries.
      const inner = c.getChild('forwarded', NS.forward)?.getChild('message');
      return inner && unimportant(inner) !== null ? 'other' : null;
    } else if (ns !== NS.delay) return null; // an encrypted payload, an invitation, a call: important
  }
  if (chatState && !other) return 'chatstate';
  return chatState || other ? 'other' : null;
}
