// XEP-0280 Message Carbons: a resource that enables carbons gets a copy of
// the user's chat messages that other resources sent (<sent/>, hooked here
// on the way out) or received (<received/>, sent by the message module right
// after delivery, since only it knows which resources got the original).
import type { Module, StanzaEvent } from '../host/host.ts';
import { sendResult } from '../host/iq-result.ts';
import { type ClientSession, sentByUser } from '../host/session.ts';
import type { ServerContext } from '../host/context.ts';
import { clone, type Element, el } from '../xml/element.ts';
import { NS } from '../xml/namespaces.ts';

const ENABLED = 'carbons';
const HINTS = 'urn:xmpp:hints';

export const carbonsModule: Module = (host) => {
  host.features.add(NS.carbons);
  host.accountFeatures.add(NS.carbons);

  const toggle = (on: boolean) => (event: StanzaEvent) => {
    if (event.origin.kind !== 'c2s') return false;
    if (on) event.origin.session.data.set(ENABLED, true);
    else event.origin.session.data.delete(ENABLED);
    sendResult(event);
    return true;
  };
  host.hook(`iq-set/self/${NS.carbons}:enable`, toggle(true));
  host.hook(`iq-set/self/${NS.carbons}:disable`, toggle(false));
  // Bind2 (XEP-0386): <enable xmlns='urn:xmpp:carbons:2'/> in the bind request; nothing to answer.
  host.bind2Features.set(NS.carbons, (session, request) => {
    if (request.name === 'enable') session.data.set(ENABLED, true);
    return null;
  });

  // After blocking (which may refuse the message) and before delivery. A
  // message sent on the user's behalf (XEP-0356) reaches every
  // carbons-enabled resource: none of them has the original.
  const sent = (event: StanzaEvent) => {
    const { stanza, origin, from, to } = event;
    if (!sentByUser(origin) || from.bare === to.bare) return false;
    const sender = origin.kind === 'c2s' ? [origin.session] : [];
    if (!anyEnabled(host.server, from.bare, sender[0]) || !eligible(stanza)) return false;
    sendCarbons(host.server, from.bare, wrap('sent', from.bare, stanza), sender);
    return false;
  };
  for (const type of ['bare', 'full', 'host']) host.hook(`pre-message/${type}`, sent, -1);
};

/**
 * The <received/> copy of a message about to be delivered to a local user,
 * or null when it is not to be copied. Removes a <private/> hint, as the
 * receiving server should (XEP-0280 §7).
 */
export function receivedCarbon(event: StanzaEvent): Element | null {
  const { stanza, from, to } = event;
  // Copies are built only for users who have a carbons-enabled resource:
  // on the hot path most have none.
  const wanted = from.bare !== to.bare && anyEnabled(event.host.server, to.bare) && eligible(stanza);
  const carbon = wanted ? wrap('received', to.bare, stanza) : null;
  const hint = stanza.getChild('private', NS.carbons);
  if (hint) stanza.remove(hint);
  return carbon;
}

/** Whether a message `user` sends from `origin` would be copied to another of their resources. */
export function carbonsWanted(server: ServerContext, user: string, origin: StanzaEvent['origin']): boolean {
  return anyEnabled(server, user, origin.kind === 'c2s' ? origin.session : undefined);
}

/** Whether this resource enabled carbons. */
export function carbonsEnabled(session: ClientSession): boolean {
  return session.data.get(ENABLED) === true;
}

/** Whether any of the user's resources (but `except`) enabled carbons. */
function anyEnabled(server: ServerContext, user: string, except?: ClientSession): boolean {
  // Most users have one resource: the one sending, on the path of every message.
  if (except && server.sessions.resourceCount(user) === 1) return false;
  for (const s of server.sessions.resources(user)) if (s !== except && s.data.get(ENABLED)) return true;
  return false;
}

/** Sends a carbon to the user's carbons-enabled resources except `skip` (they have the original). */
export function sendCarbons(server: ServerContext, user: string, carbon: Element, skip: ClientSession[]): void {
  for (const session of server.sessions.resources(user)) {
    if (!session.data.get(ENABLED) || skip.includes(session)) continue;
    carbon.attrs.to = session.jid.toString();
    session.send(carbon);
  }
}

/** Chat messages and normal ones with a body (XEP-0280 §6), unless the sender opted out. */
function eligible(stanza: Element): boolean {
  if (stanza.getChild('private', NS.carbons) || stanza.getChild('no-copy', HINTS)) return false;
  const type = stanza.attrs.type ?? 'normal';
  return type === 'chat' || (type === 'normal' && stanza.getChild('body') !== undefined);
}

function wrap(direction: 'sent' | 'received', user: string, stanza: Element): Element {
  const copy = clone(stanza);
  copy.attrs.xmlns = NS.client;
  return el(
    'message',
    { from: user, type: stanza.attrs.type },
    el(direction, { xmlns: NS.carbons }, el('forwarded', { xmlns: NS.forward }, copy)),
  );
}
