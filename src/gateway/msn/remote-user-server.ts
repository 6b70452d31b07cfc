// The user's server reached over stanzas: the transport as an XEP-0114
// component of another server (Prosody, ejabberd, another jabberfly), and
// users of other servers in-process. Rosters are read and written with
// XEP-0356 privileged roster iqs where that server granted "roster both" in
// its <privilege/> message (else `managesRoster` says no and the gateway
// offers contacts with roster-subsync); the user's vCard is an ordinary iq
// get to the user's bare JID; the user's presence is asked for with a probe.
import { IqCaller } from '../../host/iq-caller.ts';
import { Jid } from '../../jid/jid.ts';
import type { Roster, RosterItem, Subscription } from '../../storage/roster.ts';
import { KeyedMutex } from '../../util/keyed-mutex.ts';
import { type Element, el } from '../../xml/element.ts';
import { NS } from '../../xml/namespaces.ts';
import type { MsnGateway } from './gateway.ts';
import type { UserServer } from './user-server.ts';

const SUBSCRIPTIONS = new Set(['none', 'to', 'from', 'both']);

/** What one server granted the transport (XEP-0356 §"perm" values). */
export interface Grant {
  roster: 'none' | 'get' | 'set' | 'both';
  message: 'none' | 'outgoing';
  presence: 'none' | 'managed_entity' | 'roster';
}

export class RemoteUserServer implements UserServer {
  private readonly iq: IqCaller;
  /** Server domain → what it granted; only the domain the transport serves as home is believed. */
  private readonly grants = new Map<string, Grant>();
  private readonly edits = new KeyedMutex();

  constructor(private readonly gw: MsnGateway) {
    this.iq = new IqCaller(gw.host, gw.server.config.msn.requestTimeout * 1000);
    // The server announces privileges with a message to the component's
    // domain (XEP-0356 §4.2); ahead of the gateway's own message handling.
    gw.host.hook('message/host', (e) => {
      const privilege = e.stanza.getChild('privilege', NS.privilege);
      if (!privilege) return false;
      if (e.from.local || e.from.resource || e.from.domain !== gw.server.config.domain) {
        gw.host.log.warn('ignoring a privilege grant from a server this transport does not serve', {
          from: e.from.toString(),
        });
        return true;
      }
      const grant = parseGrant(privilege);
      this.grants.set(e.from.domain, grant);
      gw.host.log.info('privileges granted', { server: e.from.domain, ...grant });
      return true;
    }, 100);
  }

  /** What the users' server granted, if anything (for status and tests). */
  grantOf(domain: string): Grant | undefined {
    return this.grants.get(domain);
  }

  managesRoster(user: Jid): boolean {
    return this.grants.get(user.domain)?.roster === 'both';
  }

  editRoster(user: Jid, edit: (roster: Roster) => void): Promise<void> {
    return this.edits.run(user.bare, async () => {
      const roster = await this.fetchRoster(user);
      const before = new Map([...roster.items].map(([jid, item]) => [jid, snapshot(item)]));
      edit(roster);
      const writes: Array<Promise<unknown>> = [];
      for (const [jid, item] of roster.items) {
        if (before.get(jid) !== snapshot(item)) writes.push(this.setItem(user, itemElement(item)));
      }
      for (const jid of before.keys()) {
        if (!roster.items.has(jid)) writes.push(this.setItem(user, el('item', { jid, subscription: 'remove' })));
      }
      const results = await Promise.allSettled(writes);
      const failed = results.filter((r) => r.status === 'rejected');
      if (failed.length) {
        this.gw.host.log.warn('roster changes refused by the user\'s server', {
          user: user.bare,
          failed: failed.length,
          error: String((failed[0] as PromiseRejectedResult).reason?.message ?? ''),
        });
      }
    });
  }

  requestPresence(user: Jid): void {
    this.gw.send(el('presence', { type: 'probe', from: this.gw.domain, to: user.bare }));
  }

  async ownVcard(user: Jid): Promise<Element | undefined> {
    try {
      const reply = await this.iq.request(
        el('iq', { type: 'get', from: this.gw.domain, to: user.bare }, el('vCard', { xmlns: NS.vcard })),
      );
      return reply.getChild('vCard', NS.vcard);
    } catch (err) {
      this.gw.host.log.debug('cannot read the user\'s vCard', { user: user.bare, error: (err as Error).message });
      return undefined;
    }
  }

  reset(): void {
    this.grants.clear();
    this.iq.cancelAll('the link to the users\' server went down');
  }

  private async fetchRoster(user: Jid): Promise<Roster> {
    const reply = await this.iq.request(
      el('iq', { type: 'get', from: this.gw.domain, to: user.bare }, el('query', { xmlns: NS.roster })),
    );
    const roster: Roster = { version: 0, items: new Map(), pending: new Map() };
    for (const item of reply.getChild('query', NS.roster)?.getChildren('item') ?? []) {
      const jid = Jid.tryParse(item.attrs.jid);
      if (!jid?.isBare) continue;
      const sub = item.attrs.subscription;
      roster.items.set(jid.bare, {
        jid: jid.bare,
        name: item.attrs.name || undefined,
        subscription: (SUBSCRIPTIONS.has(sub) ? sub : 'none') as Subscription,
        ask: item.attrs.ask === 'subscribe' ? 'subscribe' : undefined,
        groups: item.getChildren('group').map((g) => g.getText()),
      });
    }
    return roster;
  }

  private setItem(user: Jid, item: Element): Promise<Element> {
    return this.iq.request(
      el('iq', { type: 'set', from: this.gw.domain, to: user.bare }, el('query', { xmlns: NS.roster }, item)),
    );
  }
}

/** What a roster set carries: name, subscription (XEP-0356 lets the privileged entity set it) and groups. */
function snapshot(item: RosterItem): string {
  return JSON.stringify([item.name ?? '', item.subscription, [...item.groups].sort()]);
}

function itemElement(item: RosterItem): Element {
  return el(
    'item',
    { jid: item.jid, name: item.name, subscription: item.subscription },
    ...item.groups.map((g) => el('group', null, g)),
  );
}

function parseGrant(privilege: Element): Grant {
  const grant: Grant = { roster: 'none', message: 'none', presence: 'none' };
  for (const perm of privilege.getChildren('perm')) {
    const { access, type } = perm.attrs;
    if (access === 'roster' && ['get', 'set', 'both'].includes(type)) grant.roster = type as Grant['roster'];
    if (access === 'message' && type === 'outgoing') grant.message = 'outgoing';
    if (access === 'presence' && (type === 'managed_entity' || type === 'roster')) grant.presence = type;
  }
  return grant;
}
