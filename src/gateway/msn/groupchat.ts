// Groupchat (the "groupchat 1.0" subset of XEP-0045, as PyMSNt offered it):
// a room `name@msn.<domain>` (no `%` in the name) is one multi-party MSN
// switchboard. The user joins with presence to room/nick, invites MSN
// contacts with mediated invitations, and sees them come and go as
// occupants. A multi-party conversation started on the MSN side arrives as
// a room the user is invited to.
import { randomBytes } from 'node:crypto';
import { Jid } from '../../jid/jid.ts';
import type { ConversationEvent, MessageEvent } from '../../msnp/index.ts';
import { type Element, el } from '../../xml/element.ts';
import { StanzaError } from '../../xml/errors.ts';
import { NS } from '../../xml/namespaces.ts';
import type { UserSession } from './user-session.ts';

interface Room {
  name: string;
  /** The user's nickname in the room, once joined. */
  nick: string | null;
  /** Full JIDs of the user's resources in the room. */
  resources: Set<string>;
  conversationId: string | null;
  /** MSN address → occupant nickname. */
  occupants: Map<string, string>;
  /** Messages that arrived before the user joined (MSN-started rooms). */
  backlog: Element[];
}

export class Groupchats {
  private readonly rooms = new Map<string, Room>();

  constructor(private readonly session: UserSession) {}

  private get gw() {
    return this.session.gw;
  }

  private roomJid(room: Room, nick?: string): string {
    const bare = `${room.name}@${this.gw.domain}`;
    return nick ? `${bare}/${nick}` : bare;
  }

  private byConversation(id: string): Room | undefined {
    for (const r of this.rooms.values()) if (r.conversationId === id) return r;
    return undefined;
  }

  private newRoom(name: string): Room {
    const room: Room = { name, nick: null, resources: new Set(), conversationId: null, occupants: new Map(), backlog: [] };
    this.rooms.set(name, room);
    return room;
  }

  /** Sends to every joined resource of the user. */
  private toResources(room: Room, make: (to: string) => Element): void {
    for (const to of room.resources) this.gw.send(make(to));
  }

  private occupantPresence(room: Room, nick: string, to: string, self: boolean, unavailable = false): Element {
    return el(
      'presence',
      { from: this.roomJid(room, nick), to, type: unavailable ? 'unavailable' : undefined },
      el(
        'x',
        { xmlns: NS.mucUser },
        el('item', { affiliation: 'none', role: unavailable ? 'none' : 'participant' }),
        self ? el('status', { code: '110' }) : null,
      ),
    );
  }

  /** Presence from the user to room/nick: join, nick change, or leave. */
  async presence(from: Jid, to: Jid, stanza: Element): Promise<void> {
    const name = to.local;
    let room = this.rooms.get(name);
    if (stanza.attrs.type === 'unavailable') {
      if (!room?.resources.delete(from.toString())) return;
      this.gw.send(this.occupantPresence(room, room.nick!, from.toString(), true, true));
      if (room.resources.size === 0) await this.leave(room);
      return;
    }
    // Only available presence joins; probes, subscriptions and errors to a room mean nothing.
    if (stanza.attrs.type !== undefined) return;
    if (!to.resource) throw new StanzaError('jid-malformed', 'join with room@host/nick');
    room ??= this.newRoom(name);
    room.nick = to.resource;
    const fresh = !room.resources.has(from.toString());
    room.resources.add(from.toString());
    if (!fresh) return;
    for (const [, nick] of room.occupants) this.gw.send(this.occupantPresence(room, nick, from.toString(), false));
    this.gw.send(this.occupantPresence(room, room.nick, from.toString(), true));
    for (const m of room.backlog.splice(0)) {
      m.attrs.to = from.toString();
      this.gw.send(m);
    }
  }

  /** A message from the user to the room: groupchat text, or mediated invitations. */
  async message(from: Jid, to: Jid, stanza: Element): Promise<void> {
    const room = this.rooms.get(to.local);
    if (!room?.resources.has(from.toString())) throw new StanzaError('not-acceptable', 'join the room first');
    const invites = stanza.getChild('x', NS.mucUser)?.getChildren('invite') ?? [];
    for (const invite of invites) await this.invite(room, invite.attrs.to);
    const body = stanza.getChildText('body');
    if (body === null || stanza.attrs.type !== 'groupchat') return;
    if (!room.conversationId) throw new StanzaError('not-acceptable', 'invite an MSN contact first');
    await this.session.msn.sendToConversation(room.conversationId, body);
    // MUC reflects the sender's own messages to every occupant, the sender included.
    this.toResources(room, (t) =>
      el('message', { type: 'groupchat', from: this.roomJid(room, room.nick!), to: t, id: stanza.attrs.id }, el('body', null, body)),
    );
  }

  private async invite(room: Room, invitee: string | undefined): Promise<void> {
    const jid = Jid.tryParse(invitee);
    const email = jid ? this.gw.emailOf(jid) : null;
    if (!email) throw new StanzaError('jid-malformed', 'invite MSN contacts by their transport JID');
    if (room.conversationId) {
      await this.session.msn.inviteToConversation(room.conversationId, email);
    } else {
      room.conversationId = await this.session.msn.startConversation([email]);
    }
    // Joins reported while the switchboard was still being set up had no room to go to.
    const conv = this.session.msn.conversations.find((c) => c.id === room.conversationId);
    for (const who of conv?.participants ?? []) this.addOccupant(room, who);
  }

  private addOccupant(room: Room, email: string): void {
    if (room.occupants.has(email)) return;
    const nick = this.nickFor(room, email);
    room.occupants.set(email, nick);
    this.toResources(room, (t) => this.occupantPresence(room, nick, t, false));
  }

  private async leave(room: Room): Promise<void> {
    this.rooms.delete(room.name);
    if (room.conversationId) await this.session.msn.leaveConversation(room.conversationId).catch(() => {});
  }

  private nickFor(room: Room, email: string): string {
    const base = this.session.msn.getContact(email)?.nickname || email;
    const taken = new Set([...room.occupants.values(), room.nick]);
    let nick = base;
    for (let i = 2; taken.has(nick); i++) nick = `${base} (${i})`;
    return nick;
  }

  /** MSN conversation changes: participants join or leave; new MSN-side conversations. */
  onConversation(ev: ConversationEvent): void {
    let room = this.byConversation(ev.id);
    if (!room) {
      if (ev.closed || ev.participants.length < 2) return;
      room = this.invitedRoom(ev);
    }
    if (ev.joined) this.addOccupant(room, ev.joined);
    if (ev.left) {
      const nick = room.occupants.get(ev.left);
      if (nick !== undefined) {
        room.occupants.delete(ev.left);
        this.toResources(room, (t) => this.occupantPresence(room, nick, t, false, true));
      }
    }
    if (ev.closed) room.conversationId = null;
  }

  /** An MSN contact pulled us into a multi-party chat: offer it as a room. */
  private invitedRoom(ev: ConversationEvent): Room {
    const room = this.newRoom(`chat-${randomBytes(4).toString('hex')}`);
    room.conversationId = ev.id;
    for (const email of ev.participants) room.occupants.set(email, this.nickFor(room, email));
    const inviter = ev.participants[0]!;
    this.gw.send(
      el(
        'message',
        { from: this.roomJid(room), to: this.session.bare },
        el(
          'x',
          { xmlns: NS.mucUser },
          el('invite', { from: this.gw.contactJid(inviter) }, el('reason', null, 'MSN group conversation')),
        ),
        el('x', { xmlns: 'jabber:x:conference', jid: this.roomJid(room) }),
        el('body', null, `${inviter} invited you to an MSN group conversation: ${this.roomJid(room)}`),
      ),
    );
    return room;
  }

  onMessage(ev: MessageEvent): void {
    const room = this.byConversation(ev.conversationId!);
    if (!room) return;
    const nick = room.occupants.get(ev.from) ?? this.nickFor(room, ev.from);
    const make = (to: string) =>
      el('message', { type: 'groupchat', from: this.roomJid(room, nick), to }, el('body', null, ev.text));
    if (room.resources.size === 0) room.backlog.push(make(this.session.bare));
    else this.toResources(room, make);
  }

  /** The MSN session ended: every room is gone for the user. */
  closeAll(): void {
    for (const room of this.rooms.values()) {
      this.toResources(room, (t) => this.occupantPresence(room, room.nick ?? 'me', t, true, true));
    }
    this.rooms.clear();
  }
}
