// Bookmarks, one list whichever way a client keeps it:
//  - XEP-0402 PEP native bookmarks: node urn:xmpp:bookmarks:1, one item per
//    room (id = room JID). This is the list itself.
//  - XEP-0048 in private XML (XEP-0049 `storage:bookmarks`): served from, and
//    written into, the XEP-0402 node (XEP-0402 "#compat").
//  - XEP-0048 in PEP (node storage:bookmarks, item 'current', XEP-0223):
//    kept as a copy of the list, and a client writing it updates the list
//    (XEP-0402 "#compat-pep", XEP-0411).
// A legacy write becomes publishes and retractions of single XEP-0402
// items, so modern clients get their notifications; `<url/>` bookmarks,
// which XEP-0402 dropped, are not kept. Changes the server makes itself are
// marked by a bare-JID actor and not converted back.
import type { Module } from '../host/host.ts';
import { Jid } from '../jid/jid.ts';
import type { Item, Notification } from '../pubsub/service.ts';
import { type Element, el } from '../xml/element.ts';
import { NS } from '../xml/namespaces.ts';
import { Pep } from './pep.ts';
import { PrivateXmlViews } from './private.ts';

const LEGACY_KEY = `{${NS.legacyBookmarks}}storage`;

/** Node configuration XEP-0402 §4 and XEP-0223 ask for: private, persistent, never pushed on presence. */
const PRIVATE_NODE = {
  'pubsub#access_model': 'whitelist',
  'pubsub#persist_items': 'true',
  'pubsub#max_items': 'max',
  'pubsub#send_last_published_item': 'never',
};

export const bookmarksModule: Module = (host) => {
  const { server } = host;
  const pep = server.store(Pep);
  for (const f of [`${NS.bookmarks}#compat`, `${NS.bookmarks}#compat-pep`, 'urn:xmpp:bookmarks-conversion:0']) {
    host.accountFeatures.add(f);
  }

  /** The XEP-0402 list, oldest first. */
  const list = async (user: string): Promise<Item[]> => {
    const service = pep.service(user);
    const node = await service.getNode(NS.bookmarks);
    return node ? (await service.items(Jid.parse(user), NS.bookmarks)).items : [];
  };

  /** Creates a node with the private configuration when it does not exist. */
  const ensureNode = async (user: string, node: string) => {
    const service = pep.service(user);
    if (!(await service.getNode(node))) {
      await service.create(Jid.parse(user), node, {
        type: 'submit',
        formType: NS.pubsubNodeConfig,
        fields: new Map(Object.entries(PRIVATE_NODE).map(([k, v]) => [k, { var: k, values: [v] }])),
      });
    }
  };

  /** Rewrites the XEP-0048 PEP copy from the list. */
  const writeLegacyPep = async (user: string) => {
    await ensureNode(user, NS.legacyBookmarks);
    await pep.publishAs(user, NS.legacyBookmarks, { id: 'current', payload: toLegacy(await list(user)) });
  };

  /** Applies a whole XEP-0048 list: publishes what changed, retracts what went. */
  const applyLegacy = async (user: string, storage: Element) => {
    const wanted = fromLegacy(storage);
    const current = new Map((await list(user)).map((i) => [i.id, i]));
    const service = pep.service(user);
    const actor = Jid.parse(user);
    if (wanted.size) await ensureNode(user, NS.bookmarks);
    for (const [jid, conference] of wanted) {
      const old = current.get(jid)?.payload;
      if (old && sameConference(old, conference)) continue;
      const extensions = old?.getChild('extensions');
      if (extensions) conference.cnode(extensions);
      await service.publish(actor, NS.bookmarks, { id: jid, payload: conference });
    }
    const gone = [...current.keys()].filter((jid) => !wanted.has(jid));
    if (gone.length) await service.retract(actor, NS.bookmarks, gone, true);
  };

  server.store(PrivateXmlViews).views.set(LEGACY_KEY, {
    get: async (user) => toLegacy(await list(user)),
    set: async (user, storage) => {
      await applyLegacy(user, storage);
      await writeLegacyPep(user);
    },
  });

  pep.onNotification(async (n: Notification) => {
    if (!Jid.parse(n.actor).resource) return; // the server's own conversion
    const user = n.service;
    if (n.node.name === NS.bookmarks) {
      await writeLegacyPep(user);
    } else if (n.node.name === NS.legacyBookmarks && n.kind === 'items') {
      const last = await pep.lastItem(user, NS.legacyBookmarks);
      if (last?.payload?.is('storage', NS.legacyBookmarks)) await applyLegacy(user, last.payload);
    }
  });
};

/** XEP-0402 items → one XEP-0048 `<storage/>`. */
export function toLegacy(items: Item[]): Element {
  const storage = el('storage', { xmlns: NS.legacyBookmarks });
  for (const item of items) {
    const c = item.payload;
    if (!c?.is('conference', NS.bookmarks)) continue;
    storage.cnode(
      el(
        'conference',
        { jid: item.id, name: c.attrs.name, autojoin: isTrue(c.attrs.autojoin) ? 'true' : 'false' },
        c.getChildText('nick') !== null ? el('nick', null, c.getChildText('nick')!) : null,
        c.getChildText('password') !== null ? el('password', null, c.getChildText('password')!) : null,
      ),
    );
  }
  return storage;
}

/** One XEP-0048 `<storage/>` → XEP-0402 conferences by room JID (invalid JIDs skipped). */
export function fromLegacy(storage: Element): Map<string, Element> {
  const out = new Map<string, Element>();
  for (const c of storage.getChildren('conference')) {
    const jid = Jid.tryParse(c.attrs.jid);
    if (!jid || jid.resource) continue;
    out.set(
      jid.toString(),
      el(
        'conference',
        { xmlns: NS.bookmarks, name: c.attrs.name, autojoin: isTrue(c.attrs.autojoin) ? 'true' : undefined },
        c.getChildText('nick') !== null ? el('nick', null, c.getChildText('nick')!) : null,
        c.getChildText('password') !== null ? el('password', null, c.getChildText('password')!) : null,
      ),
    );
  }
  return out;
}

function isTrue(v: string | undefined): boolean {
  return v === 'true' || v === '1';
}

function sameConference(a: Element, b: Element): boolean {
  return (
    (a.attrs.name ?? '') === (b.attrs.name ?? '') &&
    isTrue(a.attrs.autojoin) === isTrue(b.attrs.autojoin) &&
    a.getChildText('nick') === b.getChildText('nick') &&
    a.getChildText('password') === b.getChildText('password')
  );
}
