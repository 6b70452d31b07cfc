// XEP-0030 Service Discovery and XEP-0115 Entity Capabilities.
// The host answers disco#info with the identities and features its modules
// declared, and disco#items with the other domains this process serves (the
// MSN transport). On a user's behalf it answers disco#info/#items of the
// account (identity account/registered) to the user and, as Prosody does,
// to contacts with a presence subscription; anyone else gets
// service-unavailable, as if the account did not exist. The host's caps hash
// goes out as a stream feature, and `node#ver` queries are answered.
import { createHash } from 'node:crypto';
import type { Host, Identity, Module, StanzaEvent } from '../host/host.ts';
import { sendResult } from '../host/iq-result.ts';
import { RosterStore } from '../storage/roster.ts';
import { type Element, el, firstChild } from '../xml/element.ts';
import { StanzaError } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';

/** The caps node: a URI naming the software (XEP-0115 §5). */
export const CAPS_NODE = 'https://jabberfly.org';

export const discoModule: Module = (host) => {
  host.features.add(NS.discoInfo);
  host.features.add(NS.discoItems);
  if (host.userHost) host.identities.push({ category: 'server', type: 'im', name: 'jabberfly' });

  // Modules loaded after this one add features too, so the hash is computed
  // when asked for, not now.
  host.featureEvents.hook('stream-features', (event) => {
    event.features.push(el('c', { xmlns: NS.caps, hash: 'sha-1', node: CAPS_NODE, ver: hostVer(host) }));
  });

  host.hook(`iq-get/host/${NS.discoInfo}:query`, async (event) => {
    const node = queryNode(event);
    if (node !== undefined && node !== `${CAPS_NODE}#${hostVer(host)}`)
      throw new StanzaError('item-not-found');
    sendResult(event, info(host.identities, host.features, node));
  });

  host.hook(`iq-get/host/${NS.discoItems}:query`, async (event) => {
    if (queryNode(event) !== undefined) throw new StanzaError('item-not-found');
    const items = el('query', { xmlns: NS.discoItems });
    for (const other of host.server.hosts.values()) {
      if (other === host) continue;
      items.cnode(el('item', { jid: other.name, name: other.identities[0]?.name }));
    }
    sendResult(event, items);
  });

  const accountInfo = async (event: StanzaEvent) => {
    await checkVisible(event);
    if (queryNode(event) !== undefined) throw new StanzaError('item-not-found');
    sendResult(event, info([{ category: 'account', type: 'registered' }, ...host.accountIdentities], host.accountFeatures));
  };
  const accountItems = async (event: StanzaEvent) => {
    await checkVisible(event);
    if (queryNode(event) !== undefined) throw new StanzaError('item-not-found');
    sendResult(event, el('query', { xmlns: NS.discoItems }));
  };
  for (const type of ['self', 'bare']) {
    host.hook(`iq-get/${type}/${NS.discoInfo}:query`, accountInfo);
    host.hook(`iq-get/${type}/${NS.discoItems}:query`, accountItems);
  }
};

/** XEP-0115 §5.1 verification string, hashed with SHA-1 and base64-encoded. */
export function capsVer(identities: Identity[], features: Iterable<string>): string {
  // Identities sort by category, then type (then xml:lang, which we never set).
  const ids = [...identities]
    .sort(
      (a, b) =>
        compare(a.category, b.category) || compare(a.type, b.type) || compare(a.name ?? '', b.name ?? ''),
    )
    .map((i) => `${i.category}/${i.type}//${i.name ?? ''}<`);
  const feats = [...features].sort().map((f) => `${f}<`);
  return createHash('sha1')
    .update(ids.join('') + feats.join(''), 'utf8')
    .digest('base64');
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function hostVer(host: Host): string {
  return capsVer(host.identities, host.features);
}

function info(identities: Identity[], features: Iterable<string>, node?: string): Element {
  const query = el('query', { xmlns: NS.discoInfo, node });
  for (const i of identities)
    query.cnode(el('identity', { category: i.category, type: i.type, name: i.name }));
  for (const f of [...features].sort()) query.cnode(el('feature', { var: f }));
  return query;
}

function queryNode(event: StanzaEvent): string | undefined {
  return firstChild(event.stanza)?.attrs.node || undefined;
}

/** The user sees their own account; contacts see it with a subscription. */
async function checkVisible(event: StanzaEvent): Promise<void> {
  const owner = event.to.bare;
  const asker = event.from.bare;
  if (owner === asker) return;
  const item = await event.host.server.store(RosterStore).getItem(owner, asker);
  if (item?.subscription !== 'from' && item?.subscription !== 'both')
    throw new StanzaError('service-unavailable');
}
