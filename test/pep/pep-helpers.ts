// Test clients that take part in PEP: @xmpp/client sessions that advertise
// XEP-0115 caps (answering the server's disco#info with the features they
// claim, `+notify` ones included), and small pubsub request builders.
import { createHash } from 'node:crypto';
import { xml } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

export const PUBSUB = 'http://jabber.org/protocol/pubsub';
export const OWNER = 'http://jabber.org/protocol/pubsub#owner';
export const EVENT = 'http://jabber.org/protocol/pubsub#event';
export const ERRORS = 'http://jabber.org/protocol/pubsub#errors';
export const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
const DISCO_INFO = 'http://jabber.org/protocol/disco#info';
const CAPS_NODE = 'https://jabberfly.test/client';

export interface PepClient extends TestClient {
  iq(type: 'get' | 'set', to: string | undefined, payload: Element, ms?: number): Promise<Element>;
  /** Sends available presence with caps claiming these features. */
  available(features: string[]): Promise<void>;
}

let ids = 0;

/** The XEP-0115 hash of one client identity and a feature list (no forms). */
export function verOf(features: string[]): string {
  const s = `client/pc//<${[...features].sort().map((f) => `${f}<`).join('')}`;
  return createHash('sha1').update(s).digest('base64');
}

export async function pepClient(port: number, username: string, resource: string): Promise<PepClient> {
  const c = await connect({ port, username, password: `${username}-pw`, resource });
  let claimed: string[] = [];
  c.xmpp.iqCallee.get(DISCO_INFO, 'query', () =>
    xml(
      'query',
      { xmlns: DISCO_INFO, node: `${CAPS_NODE}#${verOf(claimed)}` },
      xml('identity', { category: 'client', type: 'pc' }),
      ...claimed.map((f) => xml('feature', { var: f })),
    ),
  );
  const pc = c as PepClient;
  pc.iq = async (type, to, payload, ms = 10000) => {
    const id = `q${++ids}`;
    await c.send(xml('iq', { type, to, id }, payload));
    return c.waitFor((s) => s.is('iq') && s.attrs.id === id, `iq ${id}`, ms);
  };
  pc.available = async (features) => {
    claimed = [DISCO_INFO, ...features];
    await c.send(xml('presence', {}, xml('c', { xmlns: 'http://jabber.org/protocol/caps', hash: 'sha-1', node: CAPS_NODE, ver: verOf(claimed) })));
  };
  return pc;
}

export function publish(node: string, id: string | undefined, payload: Element, options?: Record<string, string>): Element {
  return xml(
    'pubsub',
    { xmlns: PUBSUB },
    xml('publish', { node }, xml('item', { id }, payload)),
    options ? xml('publish-options', {}, form('http://jabber.org/protocol/pubsub#publish-options', options)) : null,
  );
}

export function form(formType: string, fields: Record<string, string>, type = 'submit'): Element {
  return xml(
    'x',
    { xmlns: 'jabber:x:data', type },
    xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, formType)),
    ...Object.entries(fields).map(([k, v]) => xml('field', { var: k }, xml('value', {}, v))),
  );
}

export function items(node: string, attrs: Record<string, string> = {}, ...ids: string[]): Element {
  return xml('pubsub', { xmlns: PUBSUB }, xml('items', { node, ...attrs }, ...ids.map((id) => xml('item', { id }))));
}

/** The stanza error condition of a reply, and its pubsub#errors condition if any. */
export function errorOf(reply: Element): { condition?: string; pubsub?: string; text?: string } {
  const error = reply.getChild('error');
  if (!error) return {};
  const children = error.getChildElements();
  return {
    condition: children.find((c: Element) => c.attrs.xmlns === STANZAS && c.name !== 'text')?.name,
    pubsub: children.find((c: Element) => c.attrs.xmlns === ERRORS)?.name,
    text: error.getChildText('text', STANZAS) ?? undefined,
  };
}

/** The `<items/>` of a pubsub event message for `node`, if it is one. */
export function eventItems(s: Element, node: string): Element | undefined {
  if (!s.is('message')) return undefined;
  const items = s.getChild('event', EVENT)?.getChild('items');
  return items?.attrs.node === node ? items : undefined;
}
