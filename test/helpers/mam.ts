// MAM queries from an @xmpp/client test client: results collected in the
// order they arrived, with the <fin/> of the iq result.
import { xml } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import type { TestClient } from './xmpp-client.ts';

export const MAM = 'urn:xmpp:mam:2';
let counter = 0;

export async function iq(c: TestClient, type: 'get' | 'set', payload: Element, to?: string): Promise<Element> {
  const id = `q${++counter}`;
  await c.send(xml('iq', { type, id, to }, payload));
  return c.waitFor((s) => s.is('iq') && s.attrs.id === id, `iq ${id}`, 10000);
}

/** Runs a MAM query and collects its results (in the order they came) and the <fin/>. */
export async function query(
  c: TestClient,
  fields: Record<string, string | string[]> = {},
  rsm: { max?: number; after?: string; before?: string } = {},
  extra: Element[] = [],
): Promise<{ results: Element[]; fin: Element | undefined; reply: Element }> {
  const queryid = `mam${++counter}`;
  const form = xml(
    'x',
    { xmlns: 'jabber:x:data', type: 'submit' },
    xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, MAM)),
    ...Object.entries(fields).map(([k, v]) =>
      xml('field', { var: k }, ...(Array.isArray(v) ? v : [v]).map((x) => xml('value', {}, x))),
    ),
  );
  const set = xml('set', { xmlns: 'http://jabber.org/protocol/rsm' });
  if (rsm.max !== undefined) set.append(xml('max', {}, String(rsm.max)));
  if (rsm.after !== undefined) set.append(xml('after', {}, rsm.after));
  if (rsm.before !== undefined) set.append(xml('before', {}, rsm.before));
  const results: Element[] = [];
  const onStanza = (s: Element) => {
    if (s.is('message') && s.getChild('result', MAM)?.attrs.queryid === queryid) results.push(s);
  };
  c.xmpp.on('stanza', onStanza);
  try {
    const reply = await iq(c, 'set', xml('query', { xmlns: MAM, queryid }, form, set, ...extra));
    return { results, fin: reply.getChild('fin', MAM), reply };
  } finally {
    c.xmpp.off('stanza', onStanza);
  }
}

export const bodyOf = (result: Element) => result.getChild('result', MAM).getChild('forwarded').getChild('message').getChildText('body');
export const idOf = (result: Element) => result.getChild('result', MAM).attrs.id as string;
