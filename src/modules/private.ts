// XEP-0049 Private XML Storage (jabber:iq:private): a user stores and reads
// back XML fragments only they can see, one per qualified name. A fragment
// with nothing stored comes back empty, as the XEP says. Other features can
// take over a name (`PrivateXmlViews`): the bookmarks module serves
// `storage:bookmarks` from PEP (XEP-0402 §compat, XEP-0411), so legacy and
// modern clients see the same bookmarks. Limit: limits.privateMaxSize bytes
// per user.
import type { ServerContext } from '../host/context.ts';
import type { Module, StanzaEvent } from '../host/host.ts';
import { sendResult } from '../host/iq-result.ts';
import { PrivateXmlStore } from '../storage/private-xml.ts';
import type { StorageBackend } from '../storage/types.ts';
import { type Element, el, firstChild } from '../xml/element.ts';
import { StanzaError } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';

/** A fragment another feature keeps elsewhere (by "{namespace}name"). */
export interface PrivateXmlView {
  get(user: string): Promise<Element>;
  set(user: string, fragment: Element): Promise<void>;
}

/** Names whose storage another feature took over; shared through server.store. */
export class PrivateXmlViews {
  readonly views = new Map<string, PrivateXmlView>();
  constructor(_backend: StorageBackend, _server: ServerContext) {}
}

/** Namespaces a client may not store under (XEP-0049 §3). */
const RESERVED = new Set<string>([NS.client, NS.server, NS.private]);

export const privateModule: Module = (host) => {
  const { server } = host;
  const store = server.store(PrivateXmlStore);
  const { views } = server.store(PrivateXmlViews);
  host.features.add(NS.private);

  const fragmentsOf = (event: StanzaEvent): Element[] => {
    const fragments = firstChild(event.stanza)!.getChildElements();
    if (fragments.length === 0) throw new StanzaError('not-acceptable', 'name a fragment to store or read');
    for (const f of fragments) {
      const ns = f.getNS();
      if (!ns || RESERVED.has(ns)) throw new StanzaError('not-acceptable', `private XML needs its own namespace, not '${ns ?? ''}'`);
    }
    return fragments;
  };

  host.hook(`iq-get/self/${NS.private}:query`, async (event) => {
    const user = event.from.bare;
    const query = el('query', { xmlns: NS.private });
    for (const f of fragmentsOf(event)) {
      const key = PrivateXmlStore.key(f);
      const view = views.get(key);
      query.cnode(view ? await view.get(user) : ((await store.get(user, key)) ?? el(f.name, { xmlns: f.getNS() })));
    }
    sendResult(event, query);
  });

  host.hook(`iq-set/self/${NS.private}:query`, async (event) => {
    const user = event.from.bare;
    const fragments = fragmentsOf(event);
    const own = fragments.filter((f) => !views.has(PrivateXmlStore.key(f)));
    const limit = server.config.limits.privateMaxSize;
    if (own.length && !(await store.set(user, own, limit))) {
      throw new StanzaError('not-acceptable', `private XML storage is limited to ${limit} bytes per account`);
    }
    for (const f of fragments) await views.get(PrivateXmlStore.key(f))?.set(user, f);
    sendResult(event);
  });

  // Another user's private storage does not exist for you (XEP-0049 §3).
  for (const type of ['get', 'set']) {
    host.hook(`iq-${type}/bare/${NS.private}:query`, async () => {
      throw new StanzaError('forbidden', 'private XML storage is only for its owner');
    });
  }
};
