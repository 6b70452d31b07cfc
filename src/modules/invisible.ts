// XEP-0186 Invisible Command: a resource can be online without its contacts
// seeing it. While a session is invisible its broadcast presence reaches only
// the user's own resources and the gateways hosted here (the MSN transport),
// which get it as <presence type='invisible'/> — the form transports have
// understood since XEP-0018 — so the user appears offline on the legacy
// network too instead of being logged out. Probes are answered as if the
// resource were offline. Becoming visible broadcasts the current presence.
import type { Host, Module, StanzaEvent } from '../host/host.ts';
import { sendResult } from '../host/iq-result.ts';
import type { ClientSession } from '../host/session.ts';
import type { ServerContext } from '../host/context.ts';
import { Jid } from '../jid/jid.ts';
import { BlocklistStore } from '../storage/blocklist.ts';
import { RosterStore } from '../storage/roster.ts';
import { clone, type Element, el } from '../xml/element.ts';
import { NS } from '../xml/namespaces.ts';

const INVISIBLE = 'presence:invisible';

export function isInvisible(session: ClientSession): boolean {
  return session.data.get(INVISIBLE) === true;
}

/** A gateway hosted in this process (a component domain with a gateway identity). */
export function isLocalGateway(server: ServerContext, jid: string): boolean {
  if (jid.includes('@') || jid.includes('/')) return false;
  const host = server.hosts.get(jid);
  return host !== undefined && !host.userHost && host.identities.some((i) => i.category === 'gateway');
}

/**
 * What a session's broadcast `presence` becomes for subscriber `to`: itself,
 * or (while the session is invisible) an invisible presence for a local
 * gateway and nothing for anyone else. Used by the presence module for
 * broadcasts and probe answers.
 */
export function outboundPresenceFor(server: ServerContext, session: ClientSession, to: string, presence: Element): Element | null {
  if (!isInvisible(session) || presence.attrs.type === 'unavailable') return presence;
  if (to.split('/')[0] === session.jid.bare) return presence;
  if (!isLocalGateway(server, to.split('/')[0]!)) return null;
  const invisible = clone(presence);
  invisible.attrs.type = 'invisible';
  return invisible;
}

export const invisibleModule: Module = (host: Host) => {
  const server = host.server;
  host.features.add(NS.invisible);
  host.accountFeatures.add(NS.invisible);
  const rosters = server.store(RosterStore);
  const blocklist = server.store(BlocklistStore);

  async function subscribers(user: string): Promise<string[]> {
    const roster = await rosters.get(user);
    return [...roster.items.values()].filter((i) => i.subscription === 'from' || i.subscription === 'both').map((i) => i.jid);
  }

  function send(presence: Element, from: string, to: string): void {
    const copy = clone(presence);
    copy.attrs.from = from;
    copy.attrs.to = to;
    const target = Jid.tryParse(to);
    if (!target || (copy.attrs.type !== 'unavailable' && blocklist.isBlocked(from.split('/')[0]!, target))) return;
    server.router.route(copy);
  }

  // A broadcast <presence type='invisible'/> (XEP-0018, still sent by old
  // clients) means: online, invisible. The presence module then handles it
  // as an available presence, which the invisibility above filters.
  host.hook(
    'pre-presence/self',
    ({ stanza, origin }) => {
      if (origin.kind !== 'c2s' || stanza.attrs.type !== 'invisible' || stanza.attrs.to !== undefined) return false;
      delete stanza.attrs.type;
      void hide(origin.session, false);
      return false;
    },
    10,
  );

  host.hook(`iq-set/self/${NS.invisible}:invisible`, async (event: StanzaEvent) => {
    if (event.origin.kind !== 'c2s') return false;
    sendResult(event);
    await hide(event.origin.session, true);
    return true;
  });

  /**
   * Makes a session invisible. Contacts who saw it available see it leave;
   * gateways (when `tellGateways`) get its presence as invisible.
   */
  async function hide(session: ClientSession, tellGateways: boolean): Promise<void> {
    const was = isInvisible(session);
    session.data.set(INVISIBLE, true);
    const presence = session.presence;
    if (was || !presence) return;
    const from = session.jid.toString();
    for (const jid of await subscribers(session.jid.bare)) {
      const out = outboundPresenceFor(server, session, jid, presence);
      if (!out) send(el('presence', { type: 'unavailable' }), from, jid);
      else if (tellGateways) send(out, from, jid);
    }
  }

  host.hook(`iq-set/self/${NS.invisible}:visible`, async (event: StanzaEvent) => {
    if (event.origin.kind !== 'c2s') return false;
    const session = event.origin.session;
    const was = isInvisible(session);
    session.data.delete(INVISIBLE);
    sendResult(event);
    if (was && session.presence) {
      const from = session.jid.toString();
      for (const jid of await subscribers(session.jid.bare)) send(session.presence, from, jid);
    }
    return true;
  });
};
