// The rooms of one MUC service: creating them (who may, and how many
// each), loading the persistent ones at start, storing them as they
// change, and saving their history at a clean shutdown.
import type { Host } from '../host/host.ts';
import type { Jid } from '../jid/jid.ts';
import type { Logger } from '../log.ts';
import { MucRoomStore, type RoomRecord } from '../storage/muc-rooms.ts';
import { detached } from '../stream/inbound-context.ts';
import { KeyedMutex } from '../util/keyed-mutex.ts';
import type { Element } from '../xml/element.ts';
import { StanzaError } from '../xml/errors.ts';
import { RoomArchive } from './archive.ts';
import { defaultRoomConfig } from './config-form.ts';
import type { InviteeCheck } from './room-messages.ts';
import { Room, type RoomContext } from './room.ts';

export class MucService implements RoomContext, InviteeCheck {
  /** Localpart → room. */
  readonly rooms = new Map<string, Room>();
  readonly log: Logger;
  readonly archive: RoomArchive;
  private readonly store: MucRoomStore;
  /** Rooms whose record is in storage. */
  private readonly stored = new Set<string>();
  /** One room's writes happen in the order they were made. */
  private readonly writes = new KeyedMutex();

  constructor(readonly host: Host) {
    this.log = host.log;
    this.store = host.server.store(MucRoomStore);
    this.archive = new RoomArchive(host.server, host.log);
  }

  get muc() {
    return this.host.server.config.muc;
  }

  get domain(): string {
    return this.host.name;
  }

  async load(): Promise<void> {
    for await (const record of this.store.roomsOf(this.domain)) await this.restore(record);
    if (this.rooms.size) this.log.info('persistent rooms loaded', { rooms: this.rooms.size });
  }

  private async restore(record: RoomRecord): Promise<Room> {
    const name = record.jid.slice(0, record.jid.lastIndexOf('@'));
    const room = new Room(this, name, this.domain, record, { locked: false });
    // The archive has every message (it is written as they come); the
    // snapshot of the last clean shutdown is for rooms without one.
    const archived = await this.archive.recent(room, room.history.capacity);
    room.history.restore(archived.length ? archived : await this.store.getHistory(record.jid));
    this.rooms.set(name, room);
    this.stored.add(room.jid);
    return room;
  }

  /**
   * Cluster mode: this node now serves the room (its node died, or nobody
   * served it yet). The copy loaded at start may be stale (configuration,
   * affiliations or subject changed on the other node since, or the room
   * was destroyed there), so the stored room replaces it; its occupants
   * were on the other node and join again, as after a restart. A room with
   * occupants here is left as it is.
   */
  async takeOver(name: string): Promise<void> {
    const current = this.rooms.get(name);
    if (current && current.occupants.size > 0) return;
    const jid = `${name}@${this.domain}`;
    const record = await this.writes.run(jid, () => this.store.get(jid));
    if (record) {
      await this.restore(record);
      this.log.info('room taken over', { room: jid });
    } else if (current) {
      this.rooms.delete(name);
      this.stored.delete(jid);
    }
  }

  /**
   * Sends from the room, outside the inbound context of whichever stanza
   * made the room speak: a slow occupant's full queue must not pause the
   * sender's stream (backpressure would let one occupant that stops reading
   * stall everyone who speaks in its rooms); a slow consumer is dealt with
   * on its own (closed at its queue limits). Durability is unaffected: each
   * session holds its own output until its own stanzas' storage work is done.
   */
  route(stanza: Element): void {
    detached(() => this.host.server.router.route(stanza));
  }

  /** Whether a JID belongs to a user of this server (not a remote user, not a gateway contact). */
  isLocalUser(jid: Jid): boolean {
    return this.host.server.hosts.get(jid.domain)?.userHost === true && jid.local !== '';
  }

  /** A new room for `creator`, within the creation rules and limits. */
  create(name: string, creator: Jid, options: { locked: boolean }): Room {
    if (this.muc.roomCreation === 'local' && !this.isLocalUser(creator)) {
      throw new StanzaError(
        'not-allowed',
        `only users of ${this.host.server.config.domain} may create rooms here`,
      );
    }
    const owned = [...this.rooms.values()].filter((r) => r.creator === creator.bare).length;
    if (owned >= this.muc.maxRoomsPerUser) {
      throw new StanzaError(
        'policy-violation',
        `you already created ${owned} rooms here, the most allowed (muc.maxRoomsPerUser)`,
      );
    }
    const room = new Room(
      this,
      name,
      this.domain,
      Room.newRecord(creator.bare, defaultRoomConfig(this.muc)),
      options,
    );
    this.rooms.set(name, room);
    this.log.info('room created', { room: room.jid, creator: creator.bare, locked: options.locked });
    return room;
  }

  /** Stores a persistent room, or forgets one that stopped being persistent. Rejects (and logs) on a storage failure. */
  save(room: Room): Promise<void> {
    return this.writes.run(room.jid, async () => {
      try {
        if (room.config.persistent && !room.destroyedAlready) {
          await this.store.save(room.record());
          this.stored.add(room.jid);
        } else if (this.stored.delete(room.jid)) {
          await this.store.delete(room.jid);
        }
      } catch (err) {
        this.log.error('storing a room failed', { room: room.jid, error: String(err) });
        throw new StanzaError('internal-server-error', 'the room could not be stored; try again');
      }
    });
  }

  destroyed(room: Room): void {
    if (this.rooms.get(room.name) === room) this.rooms.delete(room.name);
    this.log.info('room destroyed', { room: room.jid });
    this.save(room).catch(() => {});
    this.writes
      .run(room.jid, () => this.archive.remove(room))
      .catch((err) =>
        this.log.error('removing a room archive failed', { room: room.jid, error: String(err) }),
      );
  }

  /** Invitations the room cannot honour: contacts of a legacy-network gateway cannot join XMPP rooms. */
  refuse(jid: Jid): string | null {
    const host = this.host.server.hosts.get(jid.domain);
    if (!host || host.userHost || !host.identities.some((i) => i.category === 'gateway')) return null;
    const name = host.identities.find((i) => i.category === 'gateway')?.name ?? jid.domain;
    return `${jid.bare} is reached through the ${name} (${jid.domain}), whose contacts cannot join XMPP rooms; for a group chat with them, join a room at ${jid.domain} and invite them there`;
  }

  /** At a clean shutdown: persistent rooms keep their recent history for after the restart. */
  async stop(): Promise<void> {
    for (const room of this.rooms.values()) {
      if (!room.config.persistent) continue;
      await this.writes
        .run(room.jid, () => this.store.saveHistory(room.jid, room.history.serialise()))
        .catch((err) => this.log.error('saving room history failed', { room: room.jid, error: String(err) }));
    }
  }
}
