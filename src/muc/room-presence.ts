// Presence to an occupant JID (room@service/nick), XEP-0045 §7.2–7.6 and
// §7.14: entering (with every check of §7.2.5–7.2.10), presence updates,
// nick changes, and leaving. Errors are thrown as stanza errors: the
// router returns them from the occupant JID, with the original payload.
import type { Jid } from '../jid/jid.ts';
import { type Element, el } from '../xml/element.ts';
import { StanzaError } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';
import type { Occupant } from './occupant.ts';
import { affiliationRank } from './permissions.ts';
import { readdressed, type Room, STATUS } from './room.ts';

/** The presence an occupant shows others: the client's, without MUC payloads it addressed to the room. */
export function shownPresence(stanza: Element): Element {
  const shown = el('presence');
  for (const c of stanza.children) {
    if (typeof c === 'string') continue;
    const ns = c.attrs.xmlns;
    if (c.name === 'x' && (ns === NS.muc || ns === NS.mucUser)) continue;
    if (ns === NS.occupantId) continue;
    shown.cnode(c);
  }
  return shown;
}

export function checkNick(room: Room, nick: string): void {
  if (nick.trim() === '') throw new StanzaError('jid-malformed', 'a nickname cannot be blank');
  if ([...nick].length > room.ctx.muc.maxNickLength) {
    throw new StanzaError('not-acceptable', `nicknames are at most ${room.ctx.muc.maxNickLength} characters`);
  }
}

/** Available presence to room/nick: enter, update, or change nick. */
export function availablePresence(
  room: Room,
  from: Jid,
  nick: string,
  stanza: Element,
  created: boolean,
): void {
  const session = from.toString();
  const current = room.occupantOf(session);
  if (current) {
    if (current.nick === nick) return update(room, current, session, stanza);
    return changeNick(room, current, session, nick, stanza);
  }
  enter(room, from, nick, stanza, created);
}

function enter(room: Room, from: Jid, nick: string, stanza: Element, created: boolean): void {
  const session = from.toString();
  checkNick(room, nick);
  const holder = room.occupants.get(nick);
  if (holder && holder.bare !== from.bare)
    throw new StanzaError('conflict', 'that nickname is in use in this room');
  const affiliation = room.affiliationOf(from.bare);
  if (room.locked && affiliation !== 'owner') {
    throw new StanzaError('item-not-found', 'the room is being set up by its owner; try again shortly');
  }
  if (affiliation === 'outcast') throw new StanzaError('forbidden', 'you are banned from this room');
  if (room.config.membersOnly && affiliationRank(affiliation) < affiliationRank('member')) {
    throw new StanzaError('registration-required', 'this room is for members only');
  }
  const privileged = affiliationRank(affiliation) >= affiliationRank('admin');
  if (room.config.password && !privileged) {
    const given = stanza.getChild('x', NS.muc)?.getChildText('password');
    if (given !== room.config.password)
      throw new StanzaError('not-authorized', 'a password is required to enter this room');
  }
  if (!holder) {
    // Owners and admins may exceed the room's own limit, never the service's.
    const limit = privileged ? room.ctx.muc.maxOccupants : room.capacity;
    if (room.occupants.size >= limit) {
      throw new StanzaError('service-unavailable', `the room is full (${limit} occupants)`);
    }
  }
  const presence = shownPresence(stanza);
  const history = stanza.getChild('x', NS.muc)?.getChild('history');
  let occupant: Occupant;
  if (holder) {
    // Another session of the same user joins the nick: it needs the room's state, nobody else needs news.
    occupant = holder;
    room.addSession(holder, session, presence);
    sendRoomState(room, occupant, session);
    room.ctx.route(
      withTo(room.occupantPresence(occupant, occupant, { codes: selfCodes(room, false) }), session),
    );
  } else {
    occupant = room.addOccupant(nick, from.bare, session, presence);
    sendRoomState(room, occupant, session);
    room.broadcastPresence(occupant, { selfCodes: selfCodes(room, created) });
  }
  for (const message of room.history.select(history)) room.ctx.route(readdressed(message, session));
  room.ctx.route(withTo(room.subjectMessage(), session));
}

/** The presence of everyone else in the room, to a session that just entered (§7.2.3). */
function sendRoomState(room: Room, occupant: Occupant, session: string): void {
  for (const other of room.occupants.values()) {
    if (other === occupant) continue;
    room.ctx.route(withTo(room.occupantPresence(other, occupant), session));
  }
}

function selfCodes(room: Room, created: boolean): number[] {
  const codes: number[] = [];
  if (room.nonAnonymous) codes.push(STATUS.nonAnonymous);
  if (room.ctx.archive.archives(room)) codes.push(STATUS.logging);
  if (created) codes.push(STATUS.created);
  return codes;
}

function update(room: Room, occupant: Occupant, session: string, stanza: Element): void {
  occupant.setSession(session, shownPresence(stanza));
  room.broadcastPresence(occupant);
}

/** §7.6: unavailable from the old nick with 303 and the new nick, then available from the new one. */
function changeNick(room: Room, occupant: Occupant, session: string, nick: string, stanza: Element): void {
  checkNick(room, nick);
  const holder = room.occupants.get(nick);
  if (holder) throw new StanzaError('conflict', 'that nickname is in use in this room');
  if (occupant.sessions.size > 1) {
    throw new StanzaError(
      'not-acceptable',
      'your other sessions in this room use the current nickname; leave with them first',
    );
  }
  occupant.setSession(session, shownPresence(stanza));
  room.broadcastPresence(occupant, { unavailable: { codes: [STATUS.nickChanged] }, newNick: nick });
  room.renameOccupant(occupant, nick);
  room.broadcastPresence(occupant);
}

/** Unavailable presence to the room: the session leaves; the occupant with its last session. */
export function leave(room: Room, from: Jid, stanza: Element): void {
  const session = from.toString();
  const occupant = room.occupantOf(session);
  if (!occupant) return;
  const status = stanza.getChild('status') ?? undefined;
  if (occupant.sessions.size > 1) {
    const notice = room.occupantPresence(occupant, occupant, { unavailable: { codes: [], status } });
    room.removeSession(occupant, session);
    room.ctx.route(withTo(notice, session));
    return;
  }
  room.removeOccupant(occupant, { codes: [], status });
}

/** Addresses a stanza built for this one recipient. */
function withTo(stanza: Element, to: string): Element {
  stanza.attrs.to = to;
  return stanza;
}
