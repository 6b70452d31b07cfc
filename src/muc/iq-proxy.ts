// iqs to an occupant JID (room@service/nick), XEP-0045 §7.7 and XEP-0410.
// A request from one occupant is passed to the other occupant's real JID
// (a vCard request to its bare JID, anything else to its most recent
// session) as coming from the requester's occupant JID; the answer comes
// back the same way. The rewritten id carries where the answer goes
// (requester, original id, who must answer), sealed with an HMAC under the
// room's key, so no state is kept and nobody can forge an answer that
// reaches someone else. A client pinging its own occupant JID (self-ping)
// is answered by the room at once: it is joined.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Jid } from '../jid/jid.ts';
import { type Element, el } from '../xml/element.ts';
import { StanzaError } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';
import type { Room } from './room.ts';

interface Route {
  /** The requester's real full JID. */
  r: string;
  /** The requester's id. */
  i: string;
  /** The real JID that must answer. */
  t: string;
}

function seal(room: Room, route: Route): string {
  const body = Buffer.from(JSON.stringify(route)).toString('base64url');
  return `${body}.${mac(room, body)}`;
}

function open(room: Room, id: string): Route | null {
  const dot = id.lastIndexOf('.');
  if (dot < 0) return null;
  const body = id.slice(0, dot);
  const given = Buffer.from(id.slice(dot + 1));
  const expected = Buffer.from(mac(room, body));
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
  try {
    return JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as Route;
  } catch {
    return null;
  }
}

function mac(room: Room, body: string): string {
  return createHmac('sha256', Buffer.from(room.occupantIdKey, 'base64'))
    .update(`iq:${body}`)
    .digest('base64url')
    .slice(0, 22);
}

/** An iq get/set to room/nick. */
export function iqRequest(room: Room, from: Jid, nick: string, stanza: Element): void {
  const sender = room.occupantOf(from.toString());
  // XEP-0410: whoever is not joined learns it from this error.
  if (!sender) throw new StanzaError('not-acceptable', 'you are not in this room');
  const payload = stanza.getChildElements()[0];
  if (sender.nick === nick && payload?.is('ping', NS.ping)) {
    room.ctx.route(
      el('iq', { type: 'result', id: stanza.attrs.id, from: room.occupantJid(nick), to: from.toString() }),
    );
    return;
  }
  const target = room.occupants.get(nick);
  if (!target) throw new StanzaError('item-not-found', `nobody is called ${nick} in this room`);
  const to = payload?.is('vCard', NS.vcard) ? target.bare : target.primary;
  const forwarded = el('iq', {
    type: stanza.attrs.type,
    id: seal(room, { r: from.toString(), i: stanza.attrs.id ?? '', t: to }),
    from: room.occupantJid(sender.nick),
    to,
  });
  for (const c of stanza.children) forwarded.cnode(c);
  room.ctx.route(forwarded);
}

/** An iq result or error to room/nick: the answer to a forwarded request. */
export function iqResponse(room: Room, from: Jid, stanza: Element): void {
  const route = open(room, stanza.attrs.id ?? '');
  // Answers only count from whoever was asked; anything else is dropped.
  if (!route || (route.t !== from.toString() && route.t !== from.bare)) return;
  const answerer = room.occupantsOf(from.bare)[0];
  const reply = el('iq', {
    type: stanza.attrs.type,
    id: route.i,
    from: answerer ? room.occupantJid(answerer.nick) : room.jid,
    to: route.r,
  });
  for (const c of stanza.children) reply.cnode(c);
  room.ctx.route(reply);
}
