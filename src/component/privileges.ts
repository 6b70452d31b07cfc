// XEP-0356 Privileged Entity (urn:xmpp:privilege:2) for external
// components, with the permissions each one is granted in
// `components.<domain>.privileges` (none by default):
// - roster get/set/both: iq get/set jabber:iq:roster to a local user's bare
//   JID, answered as the user's own would be; a set may also set the
//   subscription (the component manages its contacts' subscriptions);
//   changes are pushed to the user's resources;
// - message outgoing: a <message/> to the server wrapping
//   <privilege><forwarded><message from='user@domain'/> is sent as that user,
//   through the user's own outgoing path (router.asUser): archived and
//   carbon-copied like the user's own clients' messages, refused (to the
//   component) when the user blocked the recipient;
// - presence managed_entity: the component gets every local user's
//   broadcast available/unavailable presence (an invisible one, XEP-0186,
//   is not seen); roster: also the presence of the users' contacts on other
//   servers (each change once).
// The grant is announced with a <privilege/> message right after the
// handshake; a component without a permission gets forbidden.
// Hooks sit on the user host; a stanza from anyone but a component passes
// through untouched.
import type { Host, StanzaEvent } from '../host/host.ts';
import { sendResult } from '../host/iq-result.ts';
import type { ClientSession, Origin } from '../host/session.ts';
import { Jid } from '../jid/jid.ts';
import { outboundPresenceFor } from '../modules/invisible.ts';
import { itemElement, itemFor, readItem, updateRoster } from '../modules/roster.ts';
import { BlocklistStore } from '../storage/blocklist.ts';
import { RosterStore, type Subscription } from '../storage/roster.ts';
import { clone, type Element, el } from '../xml/element.ts';
import { StanzaError } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';
import type { ComponentService } from './component-service.ts';

const SUBSCRIPTIONS = new Set(['none', 'to', 'from', 'both']);
/** Contacts' presences remembered to send each change once (XEP-0356 §8 rule 2). */
const SEEN_MAX = 10_000;

export function installPrivileges(host: Host, service: ComponentService): void {
  const server = host.server;
  const rosters = server.store(RosterStore);
  const blocklist = server.store(BlocklistStore);
  const grantOf = (origin: Origin) => (origin.kind === 'component' ? service.privilegesOf(origin.domain) : undefined);
  /** Connected components that get presence: every one with a presence permission, or only `roster` ones. */
  const presenceTargets = (contacts: boolean) =>
    service.connectedDomains().filter((d) => {
      const p = service.privilegesOf(d)?.presence ?? 'none';
      return contacts ? p === 'roster' : p !== 'none';
    });
  const forward = (stanza: Element, from: string, targets: string[]) => {
    for (const domain of targets) {
      const copy = clone(stanza);
      copy.attrs.from = from;
      copy.attrs.to = domain;
      service.sendTo(domain, copy);
    }
  };
  /** A local session's presence, as invisibility (XEP-0186) lets each component see it. */
  const forwardOwn = (session: ClientSession, stanza: Element, targets: string[]) => {
    for (const domain of targets) {
      const out = outboundPresenceFor(server, session, domain, stanza);
      if (out) forward(out, session.jid.toString(), [domain]);
    }
  };
  const seen = new Map<string, string>();

  service.onConnect((domain) => {
    const p = service.privilegesOf(domain);
    if (!p || (p.roster === 'none' && p.message === 'none' && p.presence === 'none')) return;
    const perms: Element[] = [];
    for (const access of ['roster', 'message', 'presence'] as const) {
      if (p[access] !== 'none') perms.push(el('perm', { access, type: p[access] }));
    }
    service.sendTo(domain, el('message', { from: host.name, to: domain }, el('privilege', { xmlns: NS.privilege }, ...perms)));
    if (p.presence === 'none') return;
    // Rule 1: a component that connects late gets the presences it would have had.
    const online = new Set<string>();
    for (const s of server.sessions.all()) {
      if (s.presence === null || s.jid.domain !== host.name) continue;
      online.add(s.jid.bare);
      forwardOwn(s, s.presence, [domain]);
    }
    if (p.presence === 'roster') {
      seen.clear();
      void probeContacts(online).catch((err) => host.log.warn('probing contacts for a component failed', { error: String(err) }));
    }
  });

  /** Asks online users' contacts on other servers for their presence; the answers are forwarded as they come. */
  async function probeContacts(users: Set<string>): Promise<void> {
    const probed = new Set<string>();
    for (const user of users) {
      for (const item of (await rosters.get(user)).items.values()) {
        if (item.subscription !== 'to' && item.subscription !== 'both') continue;
        const contact = Jid.tryParse(item.jid);
        if (!contact || server.hosts.has(contact.domain) || probed.has(item.jid)) continue;
        probed.add(item.jid);
        server.router.route(el('presence', { type: 'probe', from: user, to: item.jid }));
      }
    }
  }

  // ---- roster ----------------------------------------------------------------

  host.hook(`iq-get/bare/${NS.roster}:query`, (e) => {
    if (e.origin.kind !== 'component') return false;
    const roster = grantOf(e.origin)?.roster;
    if (roster !== 'get' && roster !== 'both') return Promise.reject(forbidden('roster get'));
    return (async () => {
      await mustExist(e);
      const r = await rosters.get(e.to.bare);
      const query = el('query', { xmlns: NS.roster, ver: String(r.version) });
      for (const item of r.items.values()) query.cnode(itemElement(item));
      sendResult(e, query);
    })();
  }, 10);

  host.hook(`iq-set/bare/${NS.roster}:query`, (e) => {
    if (e.origin.kind !== 'component') return false;
    const roster = grantOf(e.origin)?.roster;
    if (roster !== 'set' && roster !== 'both') return Promise.reject(forbidden('roster set'));
    return (async () => {
      await mustExist(e);
      const user = e.to.bare;
      const items = e.stanza.getChild('query', NS.roster)!.getChildren('item');
      if (items.length !== 1) throw new StanzaError('bad-request', 'a roster set holds exactly one item');
      const request = items[0]!;
      const contact = Jid.tryParse(request.attrs.jid);
      if (!contact?.isBare) throw new StanzaError('jid-malformed', 'roster items are bare JIDs');
      const jid = contact.bare;
      if (jid === user) throw new StanzaError('not-allowed', 'a user is not in their own roster');
      if (request.attrs.subscription === 'remove') {
        await updateRoster(server, user, (r) => {
          if (!r.items.delete(jid)) throw new StanzaError('item-not-found');
          r.pending.delete(jid);
        });
        return sendResult(e);
      }
      const { name, groups } = readItem(request, server.config.limits.rosterFieldMaxLength);
      const sub = request.attrs.subscription;
      await updateRoster(server, user, (r) => {
        const item = itemFor(server, r, jid);
        if (name === undefined) delete item.name;
        else item.name = name;
        item.groups = groups;
        if (SUBSCRIPTIONS.has(sub)) {
          item.subscription = sub as Subscription;
          if (sub === 'to' || sub === 'both') delete item.ask;
          if (sub === 'from' || sub === 'both') r.pending.delete(jid);
        }
      });
      sendResult(e);
    })();
  }, 10);

  /** RFC 6121 §8.5.1: an iq to an account that does not exist. */
  async function mustExist(e: StanzaEvent): Promise<void> {
    if (!(await server.accounts.exists(e.to.local))) throw new StanzaError('service-unavailable');
  }

  // ---- message on behalf of a user -------------------------------------------

  host.hook('message/host', (e) => {
    const privilege = e.stanza.getChild('privilege', NS.privilege);
    if (!privilege) return false;
    if (e.origin.kind !== 'component' || grantOf(e.origin)?.message !== 'outgoing') return Promise.reject(forbidden('message'));
    const component = e.origin.domain;
    const children = privilege.children.filter((c): c is Element => typeof c !== 'string');
    const forwarded = children.length === 1 ? privilege.getChild('forwarded', NS.forward) : undefined;
    const inner = forwarded?.getChild('message');
    if (!inner || (inner.attrs.xmlns !== undefined && inner.attrs.xmlns !== NS.client)) {
      return Promise.reject(new StanzaError('bad-request', 'expected <privilege><forwarded><message/>'));
    }
    const from = Jid.tryParse(inner.attrs.from);
    // "from" must be a bare JID of this server's users (XEP-0356 §5.1).
    if (!from?.local || from.resource || !server.hosts.get(from.domain)?.userHost) {
      return Promise.reject(new StanzaError('forbidden', 'a privileged message comes from a bare JID of this server'));
    }
    const message = clone(inner);
    delete message.attrs.xmlns;
    const to = Jid.tryParse(message.attrs.to);
    if (!to) return Promise.reject(new StanzaError('jid-malformed', 'the message needs a valid to'));
    // The user's blocklist applies as to their own clients; the component hears of it.
    if (blocklist.isBlocked(from.bare, to)) {
      return Promise.reject(new StanzaError('not-acceptable', undefined, 'cancel', el('blocked', { xmlns: NS.blockingErrors })));
    }
    // The user's own outgoing path: archived and carbon-copied as if one of their clients sent it.
    server.router.asUser(message, { kind: 'on-behalf', domain: component });
    return true;
  }, 100);

  // ---- presence ----------------------------------------------------------------

  host.hook('pre-presence/self', ({ stanza, origin }) => {
    if (origin.kind !== 'c2s' || stanza.attrs.to !== undefined) return false;
    const type = stanza.attrs.type;
    if (type === undefined || type === 'unavailable') forwardOwn(origin.session, stanza, presenceTargets(false));
    return false;
  }, 100);

  // A dropped connection ends the presence too (before the presence module clears it).
  host.sessionEvents.hook('resource-unbind', ({ session }) => {
    if (session.presence !== null) forward(el('presence', { type: 'unavailable' }), session.jid.toString(), presenceTargets(false));
  }, 100);

  for (const dest of ['bare', 'full']) {
    host.hook(`presence/${dest}`, (e) => {
      const type = e.stanza.attrs.type;
      if ((type !== undefined && type !== 'unavailable') || server.hosts.has(e.from.domain)) return false;
      const targets = presenceTargets(true);
      if (targets.length === 0) return false;
      const key = e.from.toString();
      const copy = clone(e.stanza);
      delete copy.attrs.to;
      const text = copy.toString();
      if (seen.get(key) === text) return false;
      if (seen.size >= SEEN_MAX) seen.clear();
      seen.set(key, text);
      forward(e.stanza, key, targets);
      return false;
    }, 200);
  }
}

function forbidden(what: string): StanzaError {
  return new StanzaError('forbidden', `this component has no ${what} permission`);
}
