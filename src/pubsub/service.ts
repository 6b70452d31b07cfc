// One publish-subscribe service (XEP-0060): the nodes at one JID, their
// items, configuration, affiliations and subscriptions, with the access
// rules of the four access models and the service's limits. It knows
// nothing of PEP, rosters or sessions: what the 'presence' and 'roster'
// models need comes from an AccessContext the caller supplies, and
// notifications leave through `notify` for the caller to address. PEP
// (src/modules/pep.ts) builds one per account; a MUC or pubsub component
// can build its own on the same store.
import { randomUUID } from 'node:crypto';
import type { Jid } from '../jid/jid.ts';
import type { PubsubItemRecord, PubsubNodeRecord, PubsubStore } from '../storage/types.ts';
import type { KeyedMutex } from '../util/keyed-mutex.ts';
import type { DataForm } from '../xml/data-form.ts';
import { type Element, byteLength, el, parse } from '../xml/element.ts';
import { StanzaError } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';
import { type ConfigLimits, type NodeConfig, applyForm, checkPreconditions, itemLimit, readStoredConfig } from './config.ts';
import { pubsubError } from './errors.ts';

export type Affiliation = 'owner' | 'publisher' | 'publish-only' | 'member' | 'none' | 'outcast';
export const AFFILIATIONS: readonly Affiliation[] = ['owner', 'publisher', 'publish-only', 'member', 'none', 'outcast'];

/** What the 'presence' and 'roster' access models ask about an entity (by bare JID). */
export interface AccessContext {
  /** The entity has a subscription to the service owner's presence (from/both). */
  subscribed(bare: string): boolean;
  /** Groups the entity is in on the owner's roster. */
  groups(bare: string): readonly string[];
}

export interface ServiceLimits extends ConfigLimits {
  /** Nodes one service may hold. */
  maxNodes: number;
  /** Bytes of one item's payload (serialised XML). */
  maxItemBytes: number;
}

export interface Item {
  id: string;
  publisher: string;
  payload: Element | undefined;
  published: number;
}

export interface Node {
  name: string;
  config: NodeConfig;
  record: PubsubNodeRecord;
}

export type NotificationKind = 'items' | 'retract' | 'purge' | 'delete' | 'configuration';

/** An event to deliver: to explicit subscribers, and to whoever else the caller's service model adds (PEP: contacts). */
export interface Notification {
  service: string;
  /** Who caused it (full JID of a client, or a bare JID for the service acting on its own). */
  actor: string;
  node: Node;
  kind: NotificationKind;
  /** The `<event/>` element, shared by every copy: never modify it. */
  event: Element;
  /** Explicitly subscribed JIDs (bare or full), not yet checked for access. */
  subscribers: string[];
  /** Ids of the items concerned (published or retracted). */
  itemIds: string[];
  /**
   * Whether subscribers are to be told: false when the node's configuration
   * (or the request) says not to. Listeners see every change either way.
   */
  deliver: boolean;
}

export interface ServiceOptions {
  /** The service's JID: the account's bare JID for PEP. */
  jid: string;
  store: PubsubStore;
  limits: ServiceLimits;
  /** Whether an entity owns the whole service (PEP: the account itself, any resource). */
  isOwner(jid: Jid): boolean;
  defaultConfig(node: string): NodeConfig;
  /** Create a node on first publish (XEP-0060 §7.1.4; PEP requires it). */
  autoCreate: boolean;
  /** Loaded only when an access model needs it. */
  accessContext(): Promise<AccessContext>;
  /** Serialises this service's changes (shared between the service objects of one JID). */
  lock: KeyedMutex;
  notify(n: Notification): void | Promise<void>;
}

export class PubsubService {
  constructor(readonly options: ServiceOptions) {}

  get jid(): string {
    return this.options.jid;
  }

  // ------------------------------------------------------------ reading

  async getNode(name: string): Promise<Node | undefined> {
    const record = await this.options.store.getNode(this.jid, name);
    return record ? this.wrap(record) : undefined;
  }

  async nodes(): Promise<Node[]> {
    return (await this.options.store.nodes(this.jid)).map((r) => this.wrap(r));
  }

  private wrap(record: PubsubNodeRecord): Node {
    return { name: record.node, record, config: readStoredConfig(record.config, this.options.defaultConfig(record.node)) };
  }

  private async requireNode(name: string | undefined): Promise<Node> {
    if (!name) throw pubsubError('bad-request', 'nodeid-required', 'a node is required');
    const node = await this.getNode(name);
    if (!node) throw new StanzaError('item-not-found', `no node '${name}'`);
    return node;
  }

  affiliation(node: Node, jid: Jid): Affiliation {
    if (this.options.isOwner(jid)) return 'owner';
    return (node.record.affiliations[jid.bare] as Affiliation | undefined) ?? 'none';
  }

  /** Why `jid` may not read the node's items, or null when it may (loads the access context if needed). */
  async readDenied(node: Node, jid: Jid, ctx?: AccessContext): Promise<StanzaError | null> {
    if (!ctx && needsContext(node.config) && !this.privileged(node, jid)) ctx = await this.options.accessContext();
    return this.checkRead(node, jid, ctx);
  }

  private privileged(node: Node, jid: Jid): boolean {
    const aff = this.affiliation(node, jid);
    return aff === 'owner' || aff === 'publisher' || aff === 'member';
  }

  /**
   * The access check itself, synchronous for fan-out loops: `ctx` must be
   * given when the node's model needs it (see needsContext).
   */
  checkRead(node: Node, jid: Jid, ctx: AccessContext | undefined): StanzaError | null {
    const aff = this.affiliation(node, jid);
    if (aff === 'outcast') return new StanzaError('forbidden', 'you are banned from this node');
    if (aff === 'owner' || aff === 'publisher' || aff === 'member') return null;
    switch (node.config.accessModel) {
      case 'open':
        return null;
      case 'presence':
        return ctx?.subscribed(jid.bare)
          ? null
          : pubsubError('not-authorized', 'presence-subscription-required', 'this node is for contacts with a presence subscription');
      case 'roster': {
        const groups = ctx?.groups(jid.bare) ?? [];
        return node.config.rosterGroupsAllowed.some((g) => groups.includes(g))
          ? null
          : pubsubError('not-authorized', 'not-in-roster-group', 'this node is for contacts in certain roster groups');
      }
      default:
        return pubsubError('not-allowed', 'closed-node', 'this node is for whitelisted entities only');
    }
  }

  /** The items an entity asked for (oldest first), after the access check. */
  async items(actor: Jid, name: string | undefined, query: { max?: number; ids?: string[] } = {}): Promise<{ node: Node; items: Item[] }> {
    const node = await this.requireNode(name);
    const denied = await this.readDenied(node, actor);
    if (denied) throw denied;
    const records = await this.options.store.items(this.jid, node.name, query);
    return { node, items: records.map(toItem) };
  }

  /** The node's newest item, without access checks (the caller checked). */
  async lastItem(node: Node): Promise<Item | undefined> {
    const [last] = await this.options.store.items(this.jid, node.name, { max: 1 });
    return last ? toItem(last) : undefined;
  }

  /** Nodes `actor` may read (for disco#items). */
  async readableNodes(actor: Jid): Promise<Node[]> {
    const all = await this.nodes();
    const ctx = all.some((n) => needsContext(n.config)) ? await this.options.accessContext() : undefined;
    return all.filter((node) => this.checkRead(node, actor, ctx) === null);
  }

  // ------------------------------------------------------------ publishing

  /** Publishes one item (creating the node when allowed); returns its id. */
  async publish(actor: Jid, name: string | undefined, item: { id?: string; payload?: Element }, options?: DataForm): Promise<string> {
    if (!name) throw pubsubError('bad-request', 'nodeid-required', 'publish needs a node');
    const payloadXml = item.payload?.toString();
    if (payloadXml !== undefined && byteLength(payloadXml) > this.options.limits.maxItemBytes) {
      throw pubsubError(
        'not-acceptable',
        'payload-too-big',
        `the item is larger than this server's limit of ${this.options.limits.maxItemBytes} bytes`,
      );
    }
    const id = item.id || randomUUID();
    const notification = await this.options.lock.run(this.jid, async () => {
      let node = await this.getNode(name);
      if (!node) {
        if (!this.options.autoCreate) throw new StanzaError('item-not-found', `no node '${name}'`);
        if (!this.options.isOwner(actor)) throw new StanzaError('forbidden', 'only the owner may create nodes');
        let config = this.options.defaultConfig(name);
        if (options) config = applyForm(config, options, this.options.limits);
        node = await this.createLocked(actor, name, config);
      } else if (options) {
        checkPreconditions(node.config, options, this.options.limits);
      }
      this.checkPublisher(node, actor);
      const record: PubsubItemRecord = { id, publisher: actor.toString(), payload: payloadXml ?? '', published: Date.now() };
      await this.options.store.putItem(this.jid, node.name, record, itemLimit(node.config, this.options.limits));
      const published: Item = { id, publisher: record.publisher, payload: item.payload, published: record.published };
      const event = itemsEvent(node.name, [published], node.config.deliverPayloads);
      return this.notification(actor, node, 'items', event, [id], node.config.deliverNotifications);
    });
    if (notification) await this.options.notify(notification);
    return id;
  }

  private checkPublisher(node: Node, actor: Jid): void {
    const aff = this.affiliation(node, actor);
    const model = node.config.publishModel;
    if (aff === 'owner' || aff === 'publisher' || aff === 'publish-only') return;
    if (aff !== 'outcast' && model === 'open') return;
    if (aff !== 'outcast' && model === 'subscribers' && this.isSubscribed(node, actor)) return;
    throw new StanzaError('forbidden', 'you may not publish to this node');
  }

  private isSubscribed(node: Node, jid: Jid): boolean {
    return node.record.subscriptions[jid.toString()] !== undefined || node.record.subscriptions[jid.bare] !== undefined;
  }

  /** Removes items; notifies when asked to or when the node says so. */
  async retract(actor: Jid, name: string | undefined, ids: string[], notify: boolean): Promise<void> {
    if (ids.length === 0) throw pubsubError('bad-request', 'item-required', 'retract needs an item id');
    const notification = await this.options.lock.run(this.jid, async () => {
      const node = await this.requireNode(name);
      const aff = this.affiliation(node, actor);
      if (aff !== 'owner' && aff !== 'publisher' && aff !== 'publish-only') {
        throw new StanzaError('forbidden', 'you may not retract items from this node');
      }
      const removed: string[] = [];
      for (const id of ids) if (await this.options.store.deleteItem(this.jid, node.name, id)) removed.push(id);
      if (removed.length === 0) throw new StanzaError('item-not-found', `no item '${ids[0]}'`);
      return this.notification(actor, node, 'retract', retractEvent(node.name, removed), removed, notify || node.config.notifyRetract);
    });
    if (notification) await this.options.notify(notification);
  }

  // ------------------------------------------------------------ owner use cases

  private requireOwner(node: Node | undefined, actor: Jid): void {
    if (!this.options.isOwner(actor) && node?.record.affiliations[actor.bare] !== 'owner') {
      throw new StanzaError('forbidden', 'only the node owner may do that');
    }
  }

  async create(actor: Jid, name: string | undefined, form?: DataForm): Promise<Node> {
    if (!name) throw pubsubError('not-acceptable', 'nodeid-required', 'instant nodes are not supported: name the node');
    if (!this.options.isOwner(actor)) throw new StanzaError('forbidden', 'only the owner may create nodes');
    return this.options.lock.run(this.jid, async () => {
      if (await this.getNode(name)) throw new StanzaError('conflict', `node '${name}' exists`);
      let config = this.options.defaultConfig(name);
      if (form) config = applyForm(config, form, this.options.limits);
      return this.createLocked(actor, name, config);
    });
  }

  private async createLocked(actor: Jid, name: string, config: NodeConfig): Promise<Node> {
    const count = (await this.options.store.nodes(this.jid)).length;
    if (count >= this.options.limits.maxNodes) {
      throw pubsubError(
        'not-allowed',
        'max-nodes-exceeded',
        `this account already has ${count} nodes, the server's limit (delete one first)`,
      );
    }
    const record: PubsubNodeRecord = {
      node: name,
      config: { ...config },
      affiliations: this.options.isOwner(actor) ? {} : { [actor.bare]: 'owner' },
      subscriptions: {},
      created: Date.now(),
    };
    await this.options.store.putNode(this.jid, record);
    return this.wrap(record);
  }

  async getConfig(actor: Jid, name: string | undefined): Promise<Node> {
    const node = await this.requireNode(name);
    this.requireOwner(node, actor);
    return node;
  }

  async configure(actor: Jid, name: string | undefined, form: DataForm): Promise<void> {
    const notification = await this.options.lock.run(this.jid, async () => {
      const node = await this.requireNode(name);
      this.requireOwner(node, actor);
      if (form.type === 'cancel') return undefined;
      if (form.formType !== undefined && form.formType !== NS.pubsubNodeConfig) {
        throw pubsubError('bad-request', 'invalid-options', `the form must be ${NS.pubsubNodeConfig}`);
      }
      const config = applyForm(node.config, form, this.options.limits);
      const record: PubsubNodeRecord = { ...node.record, config: { ...config } };
      await this.options.store.putNode(this.jid, record);
      await this.options.store.trim(this.jid, node.name, itemLimit(config, this.options.limits));
      const updated = this.wrap(record);
      const event = el('event', { xmlns: NS.pubsubEvent }, el('configuration', { node: node.name }));
      return this.notification(actor, updated, 'configuration', event, [], config.notifyConfig);
    });
    if (notification) await this.options.notify(notification);
  }

  async deleteNode(actor: Jid, name: string | undefined): Promise<void> {
    const notification = await this.options.lock.run(this.jid, async () => {
      const node = await this.requireNode(name);
      this.requireOwner(node, actor);
      await this.options.store.deleteNode(this.jid, node.name);
      const event = el('event', { xmlns: NS.pubsubEvent }, el('delete', { node: node.name }));
      return this.notification(actor, node, 'delete', event, [], node.config.notifyDelete);
    });
    if (notification) await this.options.notify(notification);
  }

  async purge(actor: Jid, name: string | undefined): Promise<void> {
    const notification = await this.options.lock.run(this.jid, async () => {
      const node = await this.requireNode(name);
      this.requireOwner(node, actor);
      await this.options.store.trim(this.jid, node.name, 0);
      const event = el('event', { xmlns: NS.pubsubEvent }, el('purge', { node: node.name }));
      return this.notification(actor, node, 'purge', event, [], node.config.notifyRetract);
    });
    if (notification) await this.options.notify(notification);
  }

  async getAffiliations(actor: Jid, name: string | undefined): Promise<Node> {
    const node = await this.requireNode(name);
    this.requireOwner(node, actor);
    return node;
  }

  /** Owner changes affiliations (XEP-0060 §8.9.2): all or nothing. */
  async setAffiliations(actor: Jid, name: string | undefined, changes: Array<{ jid: Jid; affiliation: string }>): Promise<void> {
    await this.options.lock.run(this.jid, async () => {
      const node = await this.requireNode(name);
      this.requireOwner(node, actor);
      const affiliations = { ...node.record.affiliations };
      for (const { jid, affiliation } of changes) {
        if (!(AFFILIATIONS as readonly string[]).includes(affiliation)) {
          throw new StanzaError('bad-request', `unknown affiliation '${affiliation}'`);
        }
        if (this.options.isOwner(jid)) throw new StanzaError('not-acceptable', "the service owner's affiliation cannot change");
        if (affiliation === 'owner') throw new StanzaError('not-acceptable', 'this service has one owner');
        if (affiliation === 'none') delete affiliations[jid.bare];
        else affiliations[jid.bare] = affiliation;
      }
      await this.options.store.putNode(this.jid, { ...node.record, affiliations });
    });
  }

  /** Owner sets subscription states (XEP-0060 §8.8.2): 'subscribed' or 'none'. */
  async setSubscriptions(actor: Jid, name: string | undefined, changes: Array<{ jid: Jid; subscription: string }>): Promise<void> {
    await this.options.lock.run(this.jid, async () => {
      const node = await this.requireNode(name);
      this.requireOwner(node, actor);
      const subscriptions = { ...node.record.subscriptions };
      for (const { jid, subscription } of changes) {
        if (subscription === 'none') delete subscriptions[jid.toString()];
        else if (subscription === 'subscribed') subscriptions[jid.toString()] ??= { subid: randomUUID() };
        else throw new StanzaError('bad-request', `unsupported subscription state '${subscription}'`);
      }
      await this.options.store.putNode(this.jid, { ...node.record, subscriptions });
    });
  }

  // ------------------------------------------------------------ subscribers

  /** Explicit subscription (XEP-0060 §6.1); returns the node and subid. */
  async subscribe(actor: Jid, name: string | undefined, jid: Jid): Promise<{ node: Node; subid: string }> {
    if (jid.bare !== actor.bare) throw pubsubError('bad-request', 'invalid-jid', 'you may only subscribe your own JID');
    return this.options.lock.run(this.jid, async () => {
      const node = await this.requireNode(name);
      const denied = await this.readDenied(node, actor);
      if (denied) throw denied;
      const key = jid.toString();
      const existing = node.record.subscriptions[key];
      if (existing) return { node, subid: existing.subid };
      const subid = randomUUID();
      const record = { ...node.record, subscriptions: { ...node.record.subscriptions, [key]: { subid } } };
      await this.options.store.putNode(this.jid, record);
      return { node: this.wrap(record), subid };
    });
  }

  async unsubscribe(actor: Jid, name: string | undefined, jid: Jid): Promise<void> {
    if (jid.bare !== actor.bare && !this.options.isOwner(actor)) {
      throw pubsubError('bad-request', 'invalid-jid', 'you may only unsubscribe your own JID');
    }
    await this.options.lock.run(this.jid, async () => {
      const node = await this.requireNode(name);
      const key = jid.toString();
      if (!node.record.subscriptions[key]) throw pubsubError('unexpected-request', 'not-subscribed', 'not subscribed');
      const subscriptions = { ...node.record.subscriptions };
      delete subscriptions[key];
      await this.options.store.putNode(this.jid, { ...node.record, subscriptions });
    });
  }

  private notification(actor: Jid, node: Node, kind: NotificationKind, event: Element, itemIds: string[], deliver: boolean): Notification {
    const subscribers = Object.keys(node.record.subscriptions);
    return { service: this.jid, actor: actor.toString(), node, kind, event, subscribers, itemIds, deliver };
  }
}

/** Whether the node's access model asks about the owner's roster. */
export function needsContext(config: NodeConfig): boolean {
  return config.accessModel === 'presence' || config.accessModel === 'roster';
}

function toItem(r: PubsubItemRecord): Item {
  return { id: r.id, publisher: r.publisher, payload: r.payload ? parse(r.payload) : undefined, published: r.published };
}

/** `<item id>payload</item>` as in results and notifications. */
export function itemElement(item: Item, withPayload = true): Element {
  return el('item', { id: item.id }, withPayload ? item.payload : undefined);
}

export function itemsEvent(node: string, items: Item[], withPayload: boolean): Element {
  return el('event', { xmlns: NS.pubsubEvent }, el('items', { node }, ...items.map((i) => itemElement(i, withPayload))));
}

export function retractEvent(node: string, ids: string[]): Element {
  return el('event', { xmlns: NS.pubsubEvent }, el('items', { node }, ...ids.map((id) => el('retract', { id }))));
}
