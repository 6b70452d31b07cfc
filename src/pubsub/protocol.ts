// The XEP-0060 wire protocol over a PubsubService: reads a `<pubsub/>`
// request (entity or owner namespace), calls the service, and builds the
// result payload. Errors are StanzaErrors the router turns into replies.
// Shared by every service that speaks pubsub (PEP today).
import { Jid } from '../jid/jid.ts';
import { type DataForm, findForm, readForm } from '../xml/data-form.ts';
import { type Element, el } from '../xml/element.ts';
import { StanzaError } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';
import { configForm } from './config.ts';
import { pubsubError, unsupported } from './errors.ts';
import { itemElement, type PubsubService } from './service.ts';

export interface RequestInfo {
  /** The requesting entity (trusted `from`). */
  actor: Jid;
  type: 'get' | 'set';
  /** The `<pubsub/>` element. */
  pubsub: Element;
  /** Roster groups offered in the configuration form (PEP: the owner's). */
  rosterGroups?: () => Promise<string[]>;
}

/** Handles one pubsub iq; resolves with the result payload (if any). */
export async function handlePubsub(service: PubsubService, req: RequestInfo): Promise<Element | undefined> {
  const owner = req.pubsub.getNS() === NS.pubsubOwner;
  const actions = req.pubsub.getChildElements();
  const action = actions.find((c) => !COMPANIONS.has(c.name)) ?? actions[0];
  if (!action) throw new StanzaError('bad-request', 'empty pubsub request');
  const name = `${req.type} ${owner ? 'owner ' : ''}${action.name}`;
  const handler = HANDLERS[name];
  if (!handler) {
    const known = Object.keys(HANDLERS).some((k) => k.endsWith(` ${owner ? 'owner ' : ''}${action.name}`));
    if (known) throw new StanzaError('bad-request', `${action.name} is not a ${req.type} request`);
    throw unsupported(action.name, `pubsub <${action.name}/> is not supported`);
  }
  return handler(service, req, action);
}

/** Elements that accompany an action rather than being one. */
const COMPANIONS = new Set(['publish-options', 'configure', 'options']);

type Handler = (service: PubsubService, req: RequestInfo, action: Element) => Promise<Element | undefined>;

const HANDLERS: Record<string, Handler> = {
  async 'set publish'(service, req, action) {
    const items = action.getChildren('item');
    if (items.length !== 1) {
      throw pubsubError('bad-request', items.length ? 'invalid-payload' : 'item-required', 'publish exactly one item');
    }
    const item = items[0]!;
    const payloads = item.getChildElements();
    if (payloads.length > 1) throw pubsubError('bad-request', 'invalid-payload', 'an item holds one payload element');
    let options: DataForm | undefined;
    const po = req.pubsub.getChild('publish-options');
    if (po) {
      options = findForm(po);
      if (!options) throw pubsubError('bad-request', 'invalid-options', 'publish-options needs a data form');
      if (options.formType !== undefined && options.formType !== NS.pubsubPublishOptions) {
        throw pubsubError('bad-request', 'invalid-options', `publish-options must be ${NS.pubsubPublishOptions}`);
      }
    }
    const id = await service.publish(req.actor, action.attrs.node, { id: item.attrs.id, payload: payloads[0] }, options);
    return pubsubEl(el('publish', { node: action.attrs.node }, el('item', { id })));
  },

  async 'set retract'(service, req, action) {
    const ids = action
      .getChildren('item')
      .map((i) => i.attrs.id)
      .filter((id): id is string => !!id);
    const notify = action.attrs.notify === 'true' || action.attrs.notify === '1';
    await service.retract(req.actor, action.attrs.node, ids, notify);
    return undefined;
  },

  async 'get items'(service, req, action) {
    const ids = action
      .getChildren('item')
      .map((i) => i.attrs.id)
      .filter((id): id is string => !!id);
    let max: number | undefined;
    if (action.attrs.max_items !== undefined) {
      max = Number(action.attrs.max_items);
      if (!Number.isInteger(max) || max < 1) throw new StanzaError('bad-request', 'max_items must be a positive integer');
    }
    const { node, items } = await service.items(req.actor, action.attrs.node, ids.length ? { ids } : { max });
    return pubsubEl(el('items', { node: node.name }, ...items.map((i) => itemElement(i))));
  },

  async 'set create'(service, req, action) {
    const configure = req.pubsub.getChild('configure');
    const form = configure ? findForm(configure) : undefined;
    await service.create(req.actor, action.attrs.node, form);
    return undefined;
  },

  async 'set subscribe'(service, req, action) {
    const jid = parseJid(action.attrs.jid);
    const { node, subid } = await service.subscribe(req.actor, action.attrs.node, jid);
    return pubsubEl(el('subscription', { node: node.name, jid: jid.toString(), subid, subscription: 'subscribed' }));
  },

  async 'set unsubscribe'(service, req, action) {
    await service.unsubscribe(req.actor, action.attrs.node, parseJid(action.attrs.jid));
    return undefined;
  },

  async 'get subscriptions'(service, req, action) {
    const filter = action.attrs.node;
    const list = el('subscriptions', { node: filter });
    for (const node of await service.nodes()) {
      if (filter && node.name !== filter) continue;
      for (const [jid, sub] of Object.entries(node.record.subscriptions)) {
        if (Jid.tryParse(jid)?.bare !== req.actor.bare) continue;
        list.cnode(el('subscription', { node: node.name, jid, subid: sub.subid, subscription: 'subscribed' }));
      }
    }
    return pubsubEl(list);
  },

  async 'get affiliations'(service, req, action) {
    const filter = action.attrs.node;
    const list = el('affiliations', { node: filter });
    for (const node of await service.nodes()) {
      if (filter && node.name !== filter) continue;
      const affiliation = service.affiliation(node, req.actor);
      if (affiliation !== 'none') list.cnode(el('affiliation', { node: node.name, affiliation }));
    }
    return pubsubEl(list);
  },

  async 'get options'() {
    throw unsupported('subscription-options', 'subscription options are not supported');
  },
  async 'set options'() {
    throw unsupported('subscription-options', 'subscription options are not supported');
  },
  async 'get default'() {
    throw unsupported('subscription-options', 'subscription options are not supported');
  },

  async 'get owner configure'(service, req, action) {
    const node = await service.getConfig(req.actor, action.attrs.node);
    const groups = req.rosterGroups ? await req.rosterGroups() : [];
    return ownerEl(el('configure', { node: node.name }, configForm(node.config, 'form', groups)));
  },

  async 'set owner configure'(service, req, action) {
    const x = action.getChild('x', NS.dataForms);
    if (!x) throw pubsubError('bad-request', 'invalid-options', 'configure needs a data form');
    await service.configure(req.actor, action.attrs.node, readForm(x));
    return undefined;
  },

  async 'get owner default'(service, req) {
    const groups = req.rosterGroups ? await req.rosterGroups() : [];
    return ownerEl(el('default', null, configForm(service.options.defaultConfig(''), 'form', groups)));
  },

  async 'set owner delete'(service, req, action) {
    await service.deleteNode(req.actor, action.attrs.node);
    return undefined;
  },

  async 'set owner purge'(service, req, action) {
    await service.purge(req.actor, action.attrs.node);
    return undefined;
  },

  async 'get owner affiliations'(service, req, action) {
    const node = await service.getAffiliations(req.actor, action.attrs.node);
    const list = el('affiliations', { node: node.name }, el('affiliation', { jid: service.jid, affiliation: 'owner' }));
    for (const [jid, affiliation] of Object.entries(node.record.affiliations)) {
      if (jid !== service.jid) list.cnode(el('affiliation', { jid, affiliation }));
    }
    return ownerEl(list);
  },

  async 'set owner affiliations'(service, req, action) {
    const changes = action.getChildren('affiliation').map((a) => ({ jid: parseJid(a.attrs.jid), affiliation: a.attrs.affiliation ?? '' }));
    await service.setAffiliations(req.actor, action.attrs.node, changes);
    return undefined;
  },

  async 'get owner subscriptions'(service, req, action) {
    const node = await service.getAffiliations(req.actor, action.attrs.node);
    const list = el('subscriptions', { node: node.name });
    for (const [jid, sub] of Object.entries(node.record.subscriptions)) {
      list.cnode(el('subscription', { jid, subscription: 'subscribed', subid: sub.subid }));
    }
    return ownerEl(list);
  },

  async 'set owner subscriptions'(service, req, action) {
    const changes = action
      .getChildren('subscription')
      .map((s) => ({ jid: parseJid(s.attrs.jid), subscription: s.attrs.subscription ?? '' }));
    await service.setSubscriptions(req.actor, action.attrs.node, changes);
    return undefined;
  },
};

function parseJid(value: string | undefined): Jid {
  const jid = Jid.tryParse(value);
  if (!jid) throw pubsubError('bad-request', 'jid-required', `'${value ?? ''}' is not a JID`);
  return jid;
}

function pubsubEl(child: Element): Element {
  return el('pubsub', { xmlns: NS.pubsub }, child);
}

function ownerEl(child: Element): Element {
  return el('pubsub', { xmlns: NS.pubsubOwner }, child);
}
