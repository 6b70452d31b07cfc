// A room's state and the primitive changes to it, each announcing itself
// to the occupants the way XEP-0045 says: occupants come and go, change
// role, affiliation or nick, are kicked or banned, and the room is
// configured or destroyed. The stanza handlers (room-presence.ts,
// room-messages.ts, room-admin.ts, room-owner.ts) decide what is allowed
// and call these.
import { createHmac, randomBytes } from 'node:crypto';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import type {
  Affiliation,
  AffiliationRecord,
  Role,
  RoomConfig,
  RoomRecord,
  SubjectRecord,
} from '../storage/muc-rooms.ts';
import { type Element, el } from '../xml/element.ts';
import { Fanout } from '../xml/fanout.ts';
import { NS } from '../xml/namespaces.ts';
import type { RoomArchive } from './archive.ts';
import { RoomHistory } from './history.ts';
import { Occupant } from './occupant.ts';
import { defaultRole } from './permissions.ts';

/** What a room needs from its service. */
export interface RoomContext {
  readonly muc: Config['muc'];
  readonly log: Logger;
  readonly archive: RoomArchive;
  /** Sends a stanza with a trusted `from`. */
  route(stanza: Element): void;
  /** Stores a persistent room's record (or forgets a room that stopped being persistent). */
  save(room: Room): Promise<void>;
  /** The room is gone: remove it from the service (and storage). */
  destroyed(room: Room): void;
}

/** XEP-0045 §15.6 status codes used here. */
export const STATUS = {
  nonAnonymous: 100,
  self: 110,
  configChanged: 104,
  logging: 170,
  nowNonAnonymous: 172,
  nowSemiAnonymous: 173,
  created: 201,
  banned: 301,
  nickChanged: 303,
  kicked: 307,
  affiliationRemoved: 321,
  membersOnlyRemoved: 322,
  kickedOnError: 333,
} as const;

export interface RemovalNotice {
  codes: number[];
  actor?: string;
  reason?: string;
  /** The room is destroyed: <destroy/> with an optional alternative venue. */
  destroy?: { jid?: string; reason?: string };
  /** Text the occupant gave when leaving. */
  status?: Element;
}

export class Room {
  readonly jid: string;
  config: RoomConfig;
  readonly affiliations: Map<string, AffiliationRecord>;
  subject: SubjectRecord | null;
  /** A new room waits for its owner's configuration; nobody else may enter meanwhile (§10.1). */
  locked: boolean;
  readonly creator: string;
  readonly created: string;
  readonly occupantIdKey: string;
  readonly history: RoomHistory;
  /** Nick → occupant. */
  readonly occupants = new Map<string, Occupant>();
  /** Real full JID → occupant. */
  private readonly bySession = new Map<string, Occupant>();
  /** Visitors whose voice request went to the moderators (until their role changes or they leave). */
  readonly voiceRequested = new Set<Occupant>();
  destroyedAlready = false;

  constructor(
    readonly ctx: RoomContext,
    readonly name: string,
    readonly domain: string,
    record: Omit<RoomRecord, 'jid'>,
    options: { locked: boolean },
  ) {
    this.jid = `${name}@${domain}`;
    this.config = record.config;
    this.affiliations = new Map(Object.entries(record.affiliations));
    this.subject = record.subject;
    this.creator = record.creator;
    this.created = record.created;
    this.occupantIdKey = record.occupantIdKey;
    this.locked = options.locked;
    this.history = new RoomHistory(Math.min(record.config.historyLength, ctx.muc.historyMaxStanzas));
  }

  static newRecord(creator: string, config: RoomConfig): Omit<RoomRecord, 'jid'> {
    return {
      creator,
      created: new Date().toISOString(),
      config,
      affiliations: { [creator]: { affiliation: 'owner' } },
      subject: null,
      occupantIdKey: randomBytes(32).toString('base64'),
    };
  }

  record(): RoomRecord {
    return {
      jid: this.jid,
      creator: this.creator,
      created: this.created,
      config: this.config,
      affiliations: Object.fromEntries(this.affiliations),
      subject: this.subject,
      occupantIdKey: this.occupantIdKey,
    };
  }

  // ---- lookups ----------------------------------------------------------

  affiliationOf(bare: string): Affiliation {
    return this.affiliations.get(bare)?.affiliation ?? 'none';
  }

  occupantOf(realFullJid: string): Occupant | undefined {
    return this.bySession.get(realFullJid);
  }

  /** Occupants of one real bare JID (one nick each; normally at most one). */
  occupantsOf(bare: string): Occupant[] {
    return [...this.occupants.values()].filter((o) => o.bare === bare);
  }

  occupantJid(nick: string): string {
    return `${this.jid}/${nick}`;
  }

  get nonAnonymous(): boolean {
    return this.config.whois === 'anyone';
  }

  get owners(): string[] {
    return [...this.affiliations].filter(([, a]) => a.affiliation === 'owner').map(([jid]) => jid);
  }

  /** The most occupants allowed now: the room's own limit within the service's. */
  get capacity(): number {
    const room = this.config.maxUsers;
    return room > 0 ? Math.min(room, this.ctx.muc.maxOccupants) : this.ctx.muc.maxOccupants;
  }

  occupantId(bare: string): string {
    // XEP-0421: stable per user and room, and not reversible to the real JID.
    return createHmac('sha256', Buffer.from(this.occupantIdKey, 'base64'))
      .update(bare)
      .digest('base64')
      .slice(0, 24);
  }

  // ---- building and sending stanzas --------------------------------------

  /** Sends a stanza to every session of an occupant. */
  sendToOccupant(occupant: Occupant, stanza: Element): void {
    const copies = new Fanout(stanza);
    for (const jid of occupant.sessions.keys()) this.ctx.route(copies.to(jid));
  }

  /**
   * An occupant's presence as `recipient` sees it: the real JID only for
   * moderators or in non-anonymous rooms (§7.2.3, §7.2.4).
   */
  occupantPresence(
    occupant: Occupant,
    recipient: Occupant | null,
    options: { unavailable?: RemovalNotice; codes?: number[]; newNick?: string } = {},
  ): Element {
    const gone = options.unavailable;
    const presence = gone
      ? el('presence', { type: 'unavailable', from: this.occupantJid(occupant.nick) }, gone.status ?? null)
      : el('presence', { ...occupant.presence.attrs, from: this.occupantJid(occupant.nick) });
    if (!gone) for (const c of occupant.presence.children) presence.cnode(c);
    const showJid =
      recipient === null || this.nonAnonymous || recipient.role === 'moderator' || recipient === occupant;
    const item = el('item', {
      affiliation: this.affiliationOf(occupant.bare),
      role: gone ? 'none' : occupant.role,
      jid: showJid ? occupant.primary : undefined,
      nick: options.newNick,
    });
    if (gone?.actor) item.cnode(el('actor', { nick: gone.actor }));
    if (gone?.reason) item.cnode(el('reason', null, gone.reason));
    const x = el('x', { xmlns: NS.mucUser }, item);
    if (gone?.destroy) {
      x.cnode(
        el(
          'destroy',
          { jid: gone.destroy.jid },
          gone.destroy.reason ? el('reason', null, gone.destroy.reason) : null,
        ),
      );
    }
    const codes = new Set([...(options.codes ?? []), ...(gone?.codes ?? [])]);
    if (recipient === occupant) codes.add(STATUS.self);
    else codes.delete(STATUS.self);
    for (const code of [...codes].sort()) x.cnode(el('status', { code }));
    presence.cnode(x);
    presence.cnode(el('occupant-id', { xmlns: NS.occupantId, id: occupant.id }));
    return presence;
  }

  /** Everyone's view of an occupant's presence; the occupant itself last (§7.2.3). */
  broadcastPresence(
    occupant: Occupant,
    options: { unavailable?: RemovalNotice; codes?: number[]; selfCodes?: number[]; newNick?: string } = {},
  ): void {
    for (const other of this.occupants.values()) {
      if (other === occupant) continue;
      this.sendToOccupant(other, this.occupantPresence(occupant, other, options));
    }
    const self = this.occupantPresence(occupant, occupant, {
      ...options,
      codes: [...(options.codes ?? []), ...(options.selfCodes ?? [])],
    });
    this.sendToOccupant(occupant, self);
  }

  /** A message from the room (or an occupant) to every session of every occupant. */
  broadcastMessage(message: Element): void {
    const copies = new Fanout(message);
    for (const occupant of this.occupants.values()) {
      for (const jid of occupant.sessions.keys()) this.ctx.route(copies.to(jid));
    }
  }

  /** A message from the room itself carrying status codes (config changes, §10.2.1). */
  notifyStatus(codes: number[]): void {
    if (codes.length === 0) return;
    this.broadcastMessage(
      el(
        'message',
        { type: 'groupchat', from: this.jid },
        el('x', { xmlns: NS.mucUser }, ...codes.map((code) => el('status', { code }))),
      ),
    );
  }

  /** The subject message (§7.2.16): sent after the history, empty when none was set. */
  subjectMessage(): Element {
    return el(
      'message',
      { type: 'groupchat', from: this.subject?.from ?? this.jid, id: `subject-${this.created}` },
      el('subject', null, this.subject?.text ?? ''),
      this.subject ? el('delay', { xmlns: NS.delay, from: this.jid, stamp: this.subject.at }) : null,
    );
  }

  // ---- occupants entering and leaving ------------------------------------

  /** A new occupant (its first session). */
  addOccupant(nick: string, bare: string, session: string, presence: Element): Occupant {
    const occupant = new Occupant(
      nick,
      bare,
      defaultRole(this.affiliationOf(bare), this.config),
      this.occupantId(bare),
    );
    occupant.setSession(session, presence);
    this.occupants.set(nick, occupant);
    this.bySession.set(session, occupant);
    return occupant;
  }

  /** Another session joining an existing occupant's nick. */
  addSession(occupant: Occupant, session: string, presence: Element): void {
    occupant.setSession(session, presence);
    this.bySession.set(session, occupant);
  }

  /** Drops one session; true when it was the occupant's last. */
  removeSession(occupant: Occupant, session: string): boolean {
    occupant.sessions.delete(session);
    this.bySession.delete(session);
    if (occupant.sessions.size > 0) return false;
    this.occupants.delete(occupant.nick);
    this.voiceRequested.delete(occupant);
    return true;
  }

  /** Removes an occupant and tells everyone why (left, kicked, banned, ...). */
  removeOccupant(occupant: Occupant, notice: RemovalNotice): void {
    if (this.occupants.get(occupant.nick) !== occupant) return;
    // The removed occupant hears it first; the others after (they no longer include it).
    this.sendToOccupant(occupant, this.occupantPresence(occupant, occupant, { unavailable: notice }));
    for (const session of [...occupant.sessions.keys()]) this.bySession.delete(session);
    this.occupants.delete(occupant.nick);
    this.voiceRequested.delete(occupant);
    for (const other of this.occupants.values()) {
      this.sendToOccupant(other, this.occupantPresence(occupant, other, { unavailable: notice }));
    }
    this.afterLeave();
  }

  renameOccupant(occupant: Occupant, newNick: string): void {
    this.occupants.delete(occupant.nick);
    occupant.nick = newNick;
    this.occupants.set(newNick, occupant);
  }

  /** An emptied room goes away unless it is persistent; a locked one always (§10.1.3). */
  afterLeave(): void {
    if (this.occupants.size > 0) return;
    if (this.locked || !this.config.persistent) this.destroy({});
  }

  // ---- roles and affiliations --------------------------------------------

  /** Sets an occupant's role; `none` removes it (kick, §8.2). */
  setRole(occupant: Occupant, role: Role, actor?: string, reason?: string): void {
    this.voiceRequested.delete(occupant);
    if (role === 'none') {
      this.removeOccupant(occupant, { codes: [STATUS.kicked], actor, reason });
      return;
    }
    occupant.role = role;
    this.broadcastPresence(occupant);
  }

  /**
   * Sets a user's affiliation (none removes it) and applies it to their
   * occupants: banned (301) or, in a members-only room, dropped from the
   * member list (321), they leave; otherwise their role follows.
   */
  setAffiliation(bare: string, affiliation: Affiliation, actor?: string, reason?: string): void {
    if (affiliation === 'none') this.affiliations.delete(bare);
    else this.affiliations.set(bare, { affiliation, reason: reason || undefined });
    for (const occupant of this.occupantsOf(bare)) {
      this.voiceRequested.delete(occupant);
      if (affiliation === 'outcast') {
        this.removeOccupant(occupant, { codes: [STATUS.banned], actor, reason });
      } else if (affiliation === 'none' && this.config.membersOnly) {
        this.removeOccupant(occupant, { codes: [STATUS.affiliationRemoved], actor, reason });
      } else {
        const role = defaultRole(affiliation, this.config);
        // A member keeps a voice granted by a moderator; a demoted moderator loses moderation.
        occupant.role = occupant.role === 'participant' && role === 'visitor' ? 'participant' : role;
        this.broadcastPresence(occupant);
      }
    }
  }

  // ---- configuration -----------------------------------------------------

  /** Applies a new configuration and announces what occupants can notice (§10.2.1). */
  applyConfig(next: RoomConfig): void {
    const before = this.config;
    this.config = next;
    this.history.resize(Math.min(next.historyLength, this.ctx.muc.historyMaxStanzas));
    const wasLocked = this.locked;
    this.locked = false;
    if (next.membersOnly && !before.membersOnly) {
      for (const occupant of [...this.occupants.values()]) {
        if (this.affiliationOf(occupant.bare) === 'none') {
          this.removeOccupant(occupant, { codes: [STATUS.membersOnlyRemoved] });
        }
      }
    }
    if (wasLocked) return;
    const codes: number[] = [STATUS.configChanged];
    if (before.whois !== next.whois)
      codes.push(next.whois === 'anyone' ? STATUS.nowNonAnonymous : STATUS.nowSemiAnonymous);
    this.notifyStatus(codes);
  }

  /** Ends the room: every occupant is told (with the alternative venue, if any), then it is gone. */
  destroy(destroy: { jid?: string; reason?: string }): void {
    if (this.destroyedAlready) return;
    this.destroyedAlready = true;
    for (const occupant of [...this.occupants.values()]) {
      this.sendToOccupant(
        occupant,
        this.occupantPresence(occupant, occupant, { unavailable: { codes: [], destroy } }),
      );
    }
    this.occupants.clear();
    this.bySession.clear();
    this.voiceRequested.clear();
    this.history.clear();
    this.ctx.destroyed(this);
  }
}

/** A copy of a stanza for one recipient (see xml/fanout.ts). */
export function readdressed(stanza: Element, to: string): Element {
  return new Fanout(stanza).to(to);
}
