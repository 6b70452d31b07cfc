// Messages to a room and to its occupants (XEP-0045 §7.4–7.5, §7.8, §8.1):
// groupchat messages and subject changes reflected to everyone, private
// messages between occupants, mediated invitations and declines, and
// errors bounced by an occupant's server, which take the occupant out of
// the room (status 333).
import { Jid } from '../jid/jid.ts';
import { type Element, el } from '../xml/element.ts';
import { StanzaError } from '../xml/errors.ts';
import { buildForm, type DataForm, findForm, parseBoolean } from '../xml/data-form.ts';
import { NS } from '../xml/namespaces.ts';
import type { Occupant } from './occupant.ts';
import { affiliationRank, roleRank } from './permissions.ts';
import { type Room, STATUS } from './room.ts';

/** What the room needs to know about an invitee's address. */
export interface InviteeCheck {
  /** Why this JID cannot be invited (e.g. a contact on a legacy-network gateway), or null. */
  refuse(jid: Jid): string | null;
}

/** A message to the bare room JID. */
export async function roomMessage(
  room: Room,
  from: Jid,
  stanza: Element,
  invitees: InviteeCheck,
): Promise<void> {
  const type = stanza.attrs.type ?? 'normal';
  if (type === 'error') return occupantError(room, from, stanza);
  const x = stanza.getChild('x', NS.mucUser);
  if (x && type !== 'groupchat') {
    const declines = x.getChildren('decline');
    if (declines.length) return decline(room, from, declines[0]!);
    const invites = x.getChildren('invite');
    if (invites.length) return invite(room, from, invites, x.getChildText('password'), invitees);
  }
  const form = type !== 'groupchat' ? findForm(stanza) : undefined;
  if (form?.formType === NS.mucRequest) return voiceRequest(room, from, form);
  if (type !== 'groupchat') throw new StanzaError('bad-request', 'messages to a room are of type groupchat');
  groupchat(room, from, stanza);
}

/**
 * §7.13 and §8.6: a visitor asks for voice with a muc#request form; the
 * room passes it to the moderators as an approval form, and a moderator's
 * submitted approval grants it. One request per visitor is passed on until
 * their role changes, so asking again does not flood the moderators.
 */
function voiceRequest(room: Room, from: Jid, form: DataForm): void {
  const sender = room.occupantOf(from.toString());
  if (!sender) throw new StanzaError('not-acceptable', 'you are not in this room');
  const value = (name: string) => form.fields.get(name)?.values[0];
  if (form.fields.has('muc#request_allow')) {
    if (sender.role !== 'moderator')
      throw new StanzaError('forbidden', 'only moderators approve voice requests');
    if (parseBoolean(value('muc#request_allow')) !== true) return;
    const nick = value('muc#roomnick');
    const target = nick !== undefined ? room.occupants.get(nick) : undefined;
    if (!target) throw new StanzaError('item-not-found', `nobody is called ${nick ?? ''} in this room`);
    if (target.role === 'visitor') room.setRole(target, 'participant', sender.nick);
    return;
  }
  if (value('muc#role') !== 'participant')
    throw new StanzaError('bad-request', 'a voice request asks for the participant role');
  if (sender.role !== 'visitor' || room.voiceRequested.has(sender)) return;
  room.voiceRequested.add(sender);
  const approval = el(
    'message',
    { from: room.jid },
    buildForm('form', NS.mucRequest, [
      { var: 'muc#role', type: 'list-single', label: 'Requested role', values: ['participant'] },
      { var: 'muc#jid', type: 'jid-single', label: 'User ID', values: [sender.primary] },
      { var: 'muc#roomnick', type: 'text-single', label: 'Room Nickname', values: [sender.nick] },
      { var: 'muc#request_allow', type: 'boolean', label: 'Grant voice to this person?', values: ['false'] },
    ]),
    el('body', null, `${sender.nick} asks for voice in ${room.jid}`),
  );
  for (const occupant of room.occupants.values()) {
    if (occupant.role === 'moderator') room.sendToOccupant(occupant, approval);
  }
}

function groupchat(room: Room, from: Jid, stanza: Element): void {
  const occupant = room.occupantOf(from.toString());
  if (!occupant) throw new StanzaError('not-acceptable', 'you are not in this room');
  if (roleRank(occupant.role) < roleRank('participant')) {
    throw new StanzaError('forbidden', 'you have no voice in this moderated room');
  }
  const subject = stanza.getChild('subject');
  const body = stanza.getChild('body');
  if (subject && !body) {
    if (!room.config.changeSubject && occupant.role !== 'moderator') {
      throw new StanzaError('forbidden', 'only moderators may change the subject of this room');
    }
    const text = subject.getText();
    if ([...text].length > room.ctx.muc.maxTextLength) {
      throw new StanzaError(
        'not-acceptable',
        `subjects are at most ${room.ctx.muc.maxTextLength} characters`,
      );
    }
    room.subject = text
      ? { text, from: room.occupantJid(occupant.nick), at: new Date().toISOString() }
      : null;
    // The service logs a failed write; the subject still changes for everyone present.
    room.ctx.save(room).catch(() => {});
  }
  const message = reflected(room, occupant, stanza);
  room.ctx.archive.record(room, message, room.occupantJid(occupant.nick));
  // Only what people said is history; chat states and subject changes are not (the subject has its own message).
  if (body) room.history.add(message, room.jid);
  room.broadcastMessage(message);
}

/**
 * The message as occupants get it: from the sender's occupant JID, with
 * the room's occupant id. What the client put in that only the room may
 * say is dropped: occupant ids, and stanza ids by the room (XEP-0359 §5).
 */
function reflected(room: Room, occupant: Occupant, stanza: Element): Element {
  const message = el('message', {
    type: stanza.attrs.type,
    id: stanza.attrs.id,
    from: room.occupantJid(occupant.nick),
    'xml:lang': stanza.attrs['xml:lang'],
  });
  for (const c of stanza.children) {
    if (typeof c === 'string') continue;
    if (c.attrs.xmlns === NS.occupantId) continue;
    if (c.name === 'stanza-id' && c.attrs.xmlns === NS.sid && c.attrs.by === room.jid) continue;
    message.cnode(c);
  }
  message.cnode(el('occupant-id', { xmlns: NS.occupantId, id: occupant.id }));
  return message;
}

/** A message to room/nick: a private message between occupants (§7.5), or an error from an occupant's server. */
export function privateMessage(room: Room, from: Jid, nick: string, stanza: Element): void {
  const type = stanza.attrs.type ?? 'normal';
  if (type === 'error') return occupantError(room, from, stanza);
  const sender = room.occupantOf(from.toString());
  if (!sender) throw new StanzaError('not-acceptable', 'join the room to send private messages');
  if (type === 'groupchat')
    throw new StanzaError('bad-request', 'groupchat messages go to the room, not to an occupant');
  const target = room.occupants.get(nick);
  if (!target) throw new StanzaError('item-not-found', `nobody is called ${nick} in this room`);
  const allowed = room.config.allowPm;
  if (
    allowed === 'none' ||
    (allowed === 'moderators' && sender.role !== 'moderator') ||
    (allowed === 'participants' && roleRank(sender.role) < roleRank('participant'))
  ) {
    throw new StanzaError('forbidden', 'private messages are not allowed to you in this room');
  }
  const message = reflected(room, sender, stanza);
  // §7.5: so the recipient's client knows it is a private message in a room.
  message.cnode(el('x', { xmlns: NS.mucUser }));
  room.sendToOccupant(target, message);
}

/** §7.8.2: the room forwards invitations, and in members-only rooms makes the invitee a member. */
async function invite(
  room: Room,
  from: Jid,
  invites: Element[],
  password: string | null,
  invitees: InviteeCheck,
): Promise<void> {
  const inviter = room.occupantOf(from.toString());
  if (!inviter) throw new StanzaError('not-acceptable', 'join the room to invite others');
  const affiliation = room.affiliationOf(from.bare);
  if (room.config.membersOnly) {
    const needed = room.config.allowInvites ? 'member' : 'admin';
    if (affiliationRank(affiliation) < affiliationRank(needed)) {
      throw new StanzaError('forbidden', `only ${needed}s may invite people to this members-only room`);
    }
  }
  const targets = invites.map((i) => {
    const jid = Jid.tryParse(i.attrs.to);
    if (!jid) throw new StanzaError('jid-malformed', `cannot invite '${i.attrs.to ?? ''}': not a JID`);
    const refusal = invitees.refuse(jid);
    if (refusal) throw new StanzaError('feature-not-implemented', refusal);
    if (room.affiliationOf(jid.bare) === 'outcast')
      throw new StanzaError('not-allowed', `${jid.bare} is banned from this room`);
    return { jid, reason: i.getChildText('reason') };
  });
  let changed = false;
  for (const { jid, reason } of targets) {
    if (room.config.membersOnly && room.affiliationOf(jid.bare) === 'none') {
      room.setAffiliation(jid.bare, 'member');
      changed = true;
    }
    const body = `${from.bare} invited you to the room ${room.jid}${reason ? ` (${reason})` : ''}`;
    room.ctx.route(
      el(
        'message',
        { from: room.jid, to: jid.toString() },
        el(
          'x',
          { xmlns: NS.mucUser },
          el('invite', { from: from.bare }, reason ? el('reason', null, reason) : null),
          room.config.password
            ? el('password', null, room.config.password)
            : password
              ? el('password', null, password)
              : null,
        ),
        el('x', { xmlns: NS.conference, jid: room.jid, reason: reason ?? undefined }),
        el('body', null, body),
      ),
    );
  }
  if (changed) await room.ctx.save(room);
}

/** §7.8.2: an invitee declines; the room passes it on to the inviter. */
function decline(room: Room, from: Jid, declined: Element): void {
  const to = Jid.tryParse(declined.attrs.to);
  if (!to) throw new StanzaError('jid-malformed', 'a decline names the inviter in to');
  room.ctx.route(
    el(
      'message',
      { from: room.jid, to: to.toString() },
      el(
        'x',
        { xmlns: NS.mucUser },
        el(
          'decline',
          { from: from.bare },
          declined.getChild('reason') ? el('reason', null, declined.getChildText('reason')) : null,
        ),
      ),
    ),
  );
}

// Conditions that mean the occupant cannot be reached any more (as Prosody judges them).
const GONE = new Set([
  'gone',
  'internal-server-error',
  'item-not-found',
  'jid-malformed',
  'recipient-unavailable',
  'redirect',
  'remote-server-not-found',
  'remote-server-timeout',
  'service-unavailable',
]);

/** A message or presence error from an occupant's address: if it says the occupant is gone, remove it (333). */
export function occupantError(room: Room, from: Jid, stanza: Element): void {
  const occupant = room.occupantOf(from.toString());
  if (!occupant) return;
  const error = stanza.getChild('error');
  const condition = error?.children.find((c) => typeof c !== 'string' && c.attrs.xmlns === NS.stanzas);
  const name = typeof condition === 'object' ? condition.name : undefined;
  if (stanza.name === 'message' && name !== undefined && !GONE.has(name)) return;
  room.ctx.log.info('occupant removed after an error', {
    room: room.jid,
    nick: occupant.nick,
    condition: name,
  });
  if (occupant.sessions.size > 1) {
    room.removeSession(occupant, from.toString());
    return;
  }
  room.removeOccupant(occupant, { codes: [STATUS.kickedOnError] });
}
