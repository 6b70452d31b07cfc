// The muc#admin iqs (XEP-0045 §8–10): lists of affiliations and roles, and
// changes to them (kick, ban, voice, moderator, member, admin, owner). A
// set with several items is checked whole before anything changes, so it
// applies completely or not at all.
import { Jid } from '../jid/jid.ts';
import type { Affiliation, Role } from '../storage/muc-rooms.ts';
import { type Element, el } from '../xml/element.ts';
import { StanzaError } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';
import type { Occupant } from './occupant.ts';
import {
  AFFILIATIONS,
  affiliationRank,
  checkAffiliationChange,
  checkRoleChange,
  ROLES,
} from './permissions.ts';
import type { Room } from './room.ts';

function requester(
  room: Room,
  from: Jid,
): { occupant: Occupant | undefined; affiliation: Affiliation; role: Role } {
  const occupant = room.occupantOf(from.toString());
  return { occupant, affiliation: room.affiliationOf(from.bare), role: occupant?.role ?? 'none' };
}

/** Lists the users with an affiliation, or the occupants with a role. */
export function adminGet(room: Room, from: Jid, query: Element): Element {
  const items = query.getChildren('item');
  if (items.length !== 1) throw new StanzaError('bad-request', 'ask for one affiliation or role');
  const { affiliation: wanted, role } = items[0]!.attrs;
  const me = requester(room, from);
  const result = el('query', { xmlns: NS.mucAdmin });
  if (wanted !== undefined) {
    if (!AFFILIATIONS.includes(wanted as Affiliation) || wanted === 'none') {
      throw new StanzaError('bad-request', `unknown affiliation list '${wanted}'`);
    }
    // Members of a members-only room may see who else is a member; the other lists are for admins.
    const seesMembers =
      wanted === 'member' &&
      room.config.membersOnly &&
      affiliationRank(me.affiliation) >= affiliationRank('member');
    if (affiliationRank(me.affiliation) < affiliationRank('admin') && !seesMembers) {
      throw new StanzaError('forbidden', 'only admins and owners see affiliation lists');
    }
    for (const [jid, record] of room.affiliations) {
      if (record.affiliation !== wanted) continue;
      const nick = room.occupantsOf(jid)[0]?.nick;
      result.cnode(
        el(
          'item',
          { affiliation: wanted, jid, nick },
          record.reason ? el('reason', null, record.reason) : null,
        ),
      );
    }
    return result;
  }
  if (role !== undefined) {
    if (!ROLES.includes(role as Role) || role === 'none')
      throw new StanzaError('bad-request', `unknown role list '${role}'`);
    if (me.role !== 'moderator') throw new StanzaError('forbidden', 'only moderators see role lists');
    for (const occupant of room.occupants.values()) {
      if (occupant.role !== role) continue;
      result.cnode(
        el('item', {
          role,
          affiliation: room.affiliationOf(occupant.bare),
          jid: occupant.bare,
          nick: occupant.nick,
        }),
      );
    }
    return result;
  }
  throw new StanzaError('bad-request', 'an item names an affiliation or a role');
}

type Change =
  | { kind: 'affiliation'; jid: string; to: Affiliation; reason?: string }
  | { kind: 'role'; occupant: Occupant; to: Role; reason?: string };

/** Applies a list of role and affiliation changes, all checked first. */
export async function adminSet(room: Room, from: Jid, query: Element): Promise<void> {
  const items = query.getChildren('item');
  if (items.length === 0) throw new StanzaError('bad-request', 'nothing to change');
  const me = requester(room, from);
  const changes = items.map((item) => parseChange(room, me, from, item));
  // The room keeps at least one owner (§10.6).
  const owners = new Set(room.owners);
  for (const c of changes) {
    if (c.kind !== 'affiliation') continue;
    if (c.to === 'owner') owners.add(c.jid);
    else owners.delete(c.jid);
  }
  if (owners.size === 0) throw new StanzaError('conflict', 'a room needs at least one owner');
  const actor = me.occupant?.nick;
  let affiliationsChanged = false;
  for (const c of changes) {
    if (c.kind === 'affiliation') {
      room.setAffiliation(c.jid, c.to, actor, c.reason);
      affiliationsChanged = true;
    } else if (room.occupants.get(c.occupant.nick) === c.occupant) {
      room.setRole(c.occupant, c.to, actor, c.reason);
    }
  }
  // Stored before the requester hears it worked.
  if (affiliationsChanged) await room.ctx.save(room);
}

function parseChange(room: Room, me: ReturnType<typeof requester>, from: Jid, item: Element): Change {
  const reason = item.getChildText('reason') ?? undefined;
  if (reason !== undefined && [...reason].length > room.ctx.muc.maxTextLength) {
    throw new StanzaError('not-acceptable', `reasons are at most ${room.ctx.muc.maxTextLength} characters`);
  }
  const { affiliation, role, nick, jid } = item.attrs;
  if (affiliation !== undefined) {
    if (!AFFILIATIONS.includes(affiliation as Affiliation))
      throw new StanzaError('bad-request', `unknown affiliation '${affiliation}'`);
    let target: string;
    if (jid !== undefined) {
      const parsed = Jid.tryParse(jid);
      if (!parsed) throw new StanzaError('jid-malformed', `'${jid}' is not a JID`);
      target = parsed.bare;
    } else if (nick !== undefined) {
      const occupant = room.occupants.get(nick);
      if (!occupant) throw new StanzaError('item-not-found', `nobody is called ${nick} in this room`);
      target = occupant.bare;
    } else {
      throw new StanzaError('bad-request', 'an affiliation change names a jid or a nick');
    }
    const current = room.affiliationOf(target);
    checkAffiliationChange(me.affiliation, current, affiliation as Affiliation);
    if (target === from.bare && affiliation !== current && me.affiliation !== 'owner') {
      throw new StanzaError('not-allowed', 'you cannot change your own affiliation');
    }
    return { kind: 'affiliation', jid: target, to: affiliation as Affiliation, reason };
  }
  if (role !== undefined) {
    if (!ROLES.includes(role as Role)) throw new StanzaError('bad-request', `unknown role '${role}'`);
    if (nick === undefined) throw new StanzaError('bad-request', 'a role change names an occupant by nick');
    const occupant = room.occupants.get(nick);
    if (!occupant) throw new StanzaError('item-not-found', `nobody is called ${nick} in this room`);
    if (occupant === me.occupant && role === 'none')
      throw new StanzaError('conflict', 'you cannot kick yourself');
    checkRoleChange(
      me,
      { role: occupant.role, affiliation: room.affiliationOf(occupant.bare) },
      role as Role,
    );
    return { kind: 'role', occupant, to: role as Role, reason };
  }
  throw new StanzaError('bad-request', 'an item changes an affiliation or a role');
}
