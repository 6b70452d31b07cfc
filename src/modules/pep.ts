// XEP-0163 Personal Eventing Protocol: every local account is a pubsub
// service (src/pubsub/) at its bare JID, with PEP's defaults (access model
// presence, one item, last item sent on presence, auto-create) and
// publish-options. Notifications are headline messages from the bare JID
// to each entity present to the owner whose XEP-0115 caps ask for
// `<node>+notify` and who may read the node, the owner's own resources
// included (caps.ts tracks who is present), plus explicit subscribers. A
// newly available resource that wants a node gets its last item. Nothing
// goes to a JID the owner blocked (XEP-0191).
//
// `Pep` (shared through server.store) is what other features use: the
// bookmarks and avatar modules and the MSN transport publish on a user's
// behalf and listen to what users publish.
import type { ServerContext } from '../host/context.ts';
import type { Module, StanzaEvent } from '../host/host.ts';
import { sendResult } from '../host/iq-result.ts';
import { Jid } from '../jid/jid.ts';
import type { NodeConfig } from '../pubsub/config.ts';
import { handlePubsub } from '../pubsub/protocol.ts';
import {
  type AccessContext,
  type Item,
  itemsEvent,
  type Node,
  needsContext,
  type Notification,
  PubsubService,
  type ServiceLimits,
} from '../pubsub/service.ts';
import { BlocklistStore } from '../storage/blocklist.ts';
import { RosterStore } from '../storage/roster.ts';
import type { PubsubStore, StorageBackend } from '../storage/types.ts';
import { detached } from '../stream/inbound-context.ts';
import { KeyedMutex } from '../util/keyed-mutex.ts';
import type { DataForm } from '../xml/data-form.ts';
import { type Element, el, firstChild } from '../xml/element.ts';
import { StanzaError } from '../xml/errors.ts';
import { Fanout } from '../xml/fanout.ts';
import { NS } from '../xml/namespaces.ts';
import { CapsCache, type InterestEvent } from './caps.ts';

/** XEP-0060 features a PEP account supports, advertised on the account. */
const PUBSUB_FEATURES = [
  'access-open',
  'access-presence',
  'access-roster',
  'access-whitelist',
  'auto-create',
  'auto-subscribe',
  'config-node',
  'config-node-max',
  'create-and-configure',
  'create-nodes',
  'delete-items',
  'delete-nodes',
  'filtered-notifications',
  'item-ids',
  'last-published',
  'manage-subscriptions',
  'member-affiliation',
  'modify-affiliations',
  'multi-items',
  'outcast-affiliation',
  'persistent-items',
  'presence-notifications',
  'presence-subscribe',
  'publish',
  'publish-options',
  'publisher-affiliation',
  'purge-nodes',
  'retract-items',
  'retrieve-affiliations',
  'retrieve-default',
  'retrieve-items',
  'retrieve-subscriptions',
  'subscribe',
];

/** Notifications sent per event-loop turn before a fan-out lets other work run. */
const FANOUT_SLICE = 256;

/** PEP's node defaults (XEP-0163 §5, as Prosody has them). */
export function pepDefaults(): NodeConfig {
  return {
    title: '',
    description: '',
    type: '',
    accessModel: 'presence',
    rosterGroupsAllowed: [],
    publishModel: 'publishers',
    persistItems: true,
    maxItems: 1,
    sendLastPublishedItem: 'on_sub_and_presence',
    deliverNotifications: true,
    deliverPayloads: true,
    notifyRetract: true,
    notifyDelete: true,
    notifyConfig: false,
    notificationType: 'headline',
  };
}

/** Something published, retracted or deleted on a user's PEP service. */
export type PepListener = (n: Notification) => void | Promise<void>;

export class Pep {
  readonly store: PubsubStore;
  private readonly lock = new KeyedMutex();
  private readonly fanouts = new KeyedMutex();
  private readonly listeners: PepListener[] = [];
  private readonly limits: ServiceLimits;
  private readonly caps: CapsCache;
  private readonly rosters: RosterStore;
  private readonly blocklist: BlocklistStore;
  private msgSeq = 0;

  constructor(
    backend: StorageBackend,
    private readonly server: ServerContext,
  ) {
    this.store = backend.pubsub('pep');
    const l = server.config.limits;
    this.limits = { maxNodes: l.pepMaxNodes, maxItems: l.pepMaxItems, maxItemBytes: l.pepItemMaxSize };
    this.caps = server.store(CapsCache);
    this.rosters = server.store(RosterStore);
    this.blocklist = server.store(BlocklistStore);
  }

  /** Runs after every notification of any user's service (conversions, the MSN transport). */
  onNotification(listener: PepListener): void {
    this.listeners.push(listener);
  }

  /** The PEP service of a local account (bare JID). */
  service(user: string): PubsubService {
    return new PubsubService({
      jid: user,
      store: this.store,
      limits: this.limits,
      isOwner: (jid) => jid.bare === user,
      defaultConfig: () => pepDefaults(),
      autoCreate: true,
      accessContext: () => this.accessContext(user),
      lock: this.lock,
      notify: (n) => this.notify(n),
    });
  }

  /** Publishes on the user's behalf (server-side conversions); returns the item id. */
  publishAs(user: string, node: string, item: { id?: string; payload: Element }, options?: DataForm): Promise<string> {
    return this.service(user).publish(Jid.parse(user), node, item, options);
  }

  /** The newest item of one of a user's nodes, without access checks. */
  async lastItem(user: string, node: string): Promise<Item | undefined> {
    const service = this.service(user);
    const n = await service.getNode(node);
    return n ? service.lastItem(n) : undefined;
  }

  private async accessContext(user: string): Promise<AccessContext> {
    const roster = await this.rosters.get(user);
    return {
      subscribed: (bare) => {
        const s = roster.items.get(bare)?.subscription;
        return s === 'from' || s === 'both';
      },
      groups: (bare) => roster.items.get(bare)?.groups ?? [],
    };
  }

  /** Delivers a notification to everyone who wants it and may see it. */
  private async notify(n: Notification): Promise<void> {
    const user = n.service;
    // One user's fan-outs run one after another, so every recipient sees
    // that user's events in publication order even when a large fan-out
    // yields to other work between slices.
    if (n.deliver) await this.fanouts.run(user, () => this.fanOut(n));
    for (const l of this.listeners) {
      try {
        await l(n);
      } catch (err) {
        this.server.log.warn('pep listener failed', { user, node: n.node.name, error: String(err) });
      }
    }
  }

  private async fanOut(n: Notification): Promise<void> {
    const user = n.service;
    const service = this.service(user);
    // One roster read per notification, then synchronous checks: a fan-out to
    // hundreds of contacts is one loop, not hundreds of awaits.
    const ctx = needsContext(n.node.config) ? await this.accessContext(user) : undefined;
    const want = `${n.node.name}+notify`;
    const notified = new Set<string>();
    const to: string[] = [];
    for (const [entity, features] of this.caps.entities(user)) {
      if (!features.has(want) || !this.mayReceive(service, n.node, entity, ctx)) continue;
      to.push(entity.toString());
      notified.add(entity.bare);
    }
    for (const sub of n.subscribers) {
      const jid = Jid.tryParse(sub);
      if (!jid || notified.has(jid.bare) || !this.mayReceive(service, n.node, jid, ctx)) continue;
      to.push(jid.toString());
    }
    if (to.length === 0) return;
    // One message, copied per recipient with the event serialised once (xml/fanout.ts).
    const fanout = new Fanout(this.notification(user, n.node.config, n.event));
    for (let i = 0; i < to.length; i++) {
      // Thousands of recipients must not hold up everyone else's stanzas.
      if (i > 0 && i % FANOUT_SLICE === 0) await new Promise((resolve) => setImmediate(resolve));
      this.server.router.route(fanout.to(to[i]!));
    }
  }

  private mayReceive(service: PubsubService, node: Node, jid: Jid, ctx: AccessContext | undefined): boolean {
    if (jid.bare !== service.jid && this.blocklist.isBlocked(service.jid, jid)) return false;
    return service.checkRead(node, jid, ctx) === null;
  }

  /** The notification message from the service (no `to` yet); `delay` marks a last item sent later. */
  private notification(from: string, config: NodeConfig, event: Element, delay?: number): Element {
    return el(
      'message',
      { from, type: config.notificationType === 'headline' ? 'headline' : undefined, id: `pep-${++this.msgSeq}` },
      event,
      delay !== undefined ? el('delay', { xmlns: NS.delay, from, stamp: new Date(delay).toISOString() }) : null,
    );
  }

  private send(from: string, to: string, config: NodeConfig, event: Element, delay?: number): void {
    const message = this.notification(from, config, event, delay);
    message.attrs.to = to;
    this.server.router.route(message);
  }

  /** A resource became present to `user` (or its caps changed): send the last items it newly wants. */
  async sendLastItems(e: InterestEvent): Promise<void> {
    const service = this.service(e.user);
    const nodes = (await service.nodes()).filter((node) => {
      const want = `${node.name}+notify`;
      return node.config.sendLastPublishedItem === 'on_sub_and_presence' && e.features.has(want) && !e.previous?.has(want);
    });
    if (nodes.length === 0) return;
    const ctx = nodes.some((n) => needsContext(n.config)) ? await this.accessContext(e.user) : undefined;
    for (const node of nodes) {
      if (!this.mayReceive(service, node, e.entity, ctx)) continue;
      const last = await service.lastItem(node);
      if (!last) continue;
      this.send(e.user, e.entity.toString(), node.config, itemsEvent(node.name, [last], node.config.deliverPayloads), last.published);
    }
  }

  /** After an explicit subscription: the last item, when the node sends it on subscription. */
  async sendLastOnSubscribe(user: string, node: Node, to: Jid): Promise<void> {
    if (node.config.sendLastPublishedItem === 'never') return;
    const last = await this.service(user).lastItem(node);
    if (last) this.send(user, to.toString(), node.config, itemsEvent(node.name, [last], node.config.deliverPayloads), last.published);
  }
}

export const pepModule: Module = (host) => {
  const { server } = host;
  const pep = server.store(Pep);
  const caps = server.store(CapsCache);
  const rosters = server.store(RosterStore);

  host.accountIdentities.push({ category: 'pubsub', type: 'pep' });
  host.accountFeatures.add(NS.pubsub);
  for (const f of PUBSUB_FEATURES) host.accountFeatures.add(`${NS.pubsub}#${f}`);

  // Work of the service, not of the presence that revealed the interest:
  // outside that stanza's context, so its sender's stream does not wait for it.
  caps.onInterest((e) => {
    detached(() => pep.sendLastItems(e)).catch((err) =>
      host.log.warn('sending last PEP items failed', { user: e.user, error: String(err) }),
    );
  });

  const handle = async (event: StanzaEvent) => {
    const user = event.to.bare;
    if (event.from.bare !== user && !(await server.accounts.exists(event.to.local))) {
      throw new StanzaError('service-unavailable');
    }
    const pubsub = firstChild(event.stanza)!;
    const service = pep.service(user);
    const result = await handlePubsub(service, {
      actor: event.from,
      type: event.stanza.attrs.type as 'get' | 'set',
      pubsub,
      rosterGroups: async () => {
        const roster = await rosters.get(user);
        return [...new Set([...roster.items.values()].flatMap((i) => i.groups))].sort();
      },
    });
    sendResult(event, result);
    // A new explicit subscription gets the last item after the result (XEP-0060 §6.1.7).
    const subscribe = pubsub.getChild('subscribe');
    if (subscribe && event.stanza.attrs.type === 'set' && result) {
      const node = await service.getNode(subscribe.attrs.node ?? '');
      const jid = Jid.tryParse(subscribe.attrs.jid);
      if (node && jid) await pep.sendLastOnSubscribe(user, node, jid);
    }
  };
  for (const dest of ['self', 'bare']) {
    for (const type of ['get', 'set']) {
      host.hook(`iq-${type}/${dest}/${NS.pubsub}:pubsub`, handle);
      host.hook(`iq-${type}/${dest}/${NS.pubsubOwner}:pubsub`, handle);
    }
  }

  // Disco on the account: nodes the asker may read (XEP-0163 §6.2), and a node's own info.
  const discoItems = async (event: StanzaEvent) => {
    const user = event.to.bare;
    if (event.from.bare !== user && !(await server.accounts.exists(event.to.local))) {
      throw new StanzaError('service-unavailable');
    }
    const query = firstChild(event.stanza)!;
    const service = pep.service(user);
    const result = el('query', { xmlns: NS.discoItems, node: query.attrs.node });
    if (query.attrs.node) {
      // The items of one node (XEP-0060 §5.5).
      const { items } = await service.items(event.from, query.attrs.node);
      for (const i of items) result.cnode(el('item', { jid: user, name: i.id }));
    } else {
      for (const node of await service.readableNodes(event.from)) {
        result.cnode(el('item', { jid: user, node: node.name, name: node.config.title || undefined }));
      }
    }
    sendResult(event, result);
  };
  const discoInfo = (event: StanzaEvent) => {
    const node = firstChild(event.stanza)!.attrs.node;
    if (!node) return false; // the account itself: the disco module answers
    return (async () => {
      const user = event.to.bare;
      const service = pep.service(user);
      const n = await service.getNode(node);
      if (!n || (await service.readDenied(n, event.from))) throw new StanzaError('item-not-found');
      sendResult(
        event,
        el(
          'query',
          { xmlns: NS.discoInfo, node },
          el('identity', { category: 'pubsub', type: 'leaf' }),
          el('feature', { var: NS.pubsub }),
        ),
      );
    })();
  };
  for (const dest of ['self', 'bare']) {
    host.hook(`iq-get/${dest}/${NS.discoItems}:query`, discoItems, 5);
    host.hook(`iq-get/${dest}/${NS.discoInfo}:query`, discoInfo, 5);
  }
};
