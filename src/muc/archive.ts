// A room's message archive (XEP-0313 on the room's JID, XEP-0359 stanza
// ids by the room), on the archive store and query code users' archives
// use (src/mam/). Every groupchat message with a body (or another
// conversation payload) is stamped <stanza-id by='room'/> before it is
// reflected, so occupants, the room history and MAM results carry the same
// id, and it is appended to the archive owned by the room's JID. A room
// archives when the server keeps archives (mam.enabled) and the room's
// configuration says so (muc#roomconfig_enablearchiving, on by default).
import type { Config } from '../config/schema.ts';
import type { ServerContext } from '../host/context.ts';
import type { Jid } from '../jid/jid.ts';
import type { Logger } from '../log.ts';
import { type MamQuery, readMamQuery } from '../mam/query.ts';
import { archiveMetadata, serveQuery } from '../mam/serve.ts';
import { addStanzaId } from '../mam/stanza-id.ts';
import { USER_ARCHIVE, worthArchiving } from '../modules/mam.ts';
import { newArchiveId } from '../storage/archive-id.ts';
import type { ArchiveStore } from '../storage/types.ts';
import { type Element, el, parse } from '../xml/element.ts';
import { StanzaError } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';
import type { Room } from './room.ts';

export class RoomArchive {
  private readonly store: ArchiveStore | null;
  private readonly cfg: Config['mam'];

  constructor(
    server: ServerContext,
    private readonly log: Logger,
  ) {
    this.cfg = server.config.mam;
    // Rooms share the users' archive store (one retention, one expiry): owners are room JIDs.
    this.store = this.cfg.enabled ? server.storage.archive(USER_ARCHIVE) : null;
  }

  /** Whether the server keeps archives at all (the room option is offered only then). */
  get available(): boolean {
    return this.store !== null;
  }

  archives(room: Room): boolean {
    return this.store !== null && room.config.archive;
  }

  /** Features a room shows in disco#info. */
  features(room: Room): string[] {
    return this.archives(room) ? [NS.mam, NS.mamExtended, NS.sid, NS.mucStableId] : [];
  }

  /** Stamps a message the room is about to reflect and archives it (ids forged by the client are already gone). */
  record(room: Room, message: Element, occupantJid: string): void {
    if (!this.archives(room) || !worthArchivingGroupchat(message)) return;
    const { id, when } = newArchiveId();
    addStanzaId(message, room.jid, id);
    this.store!.append(room.jid, { id, when, with: occupantJid, xml: message.toString() }).catch((err) =>
      this.log.error('room archive write failed', { room: room.jid, error: String(err) }),
    );
  }

  /** The most recent archived messages, oldest first, delayed as history (after a restart). */
  async recent(room: Room, count: number): Promise<string[]> {
    if (!this.archives(room) || count === 0) return [];
    const out: string[] = [];
    for await (const e of this.store!.query(room.jid, { reverse: true, limit: count })) {
      try {
        const stanza = parse(e.xml);
        stanza.cnode(el('delay', { xmlns: NS.delay, from: room.jid, stamp: new Date(e.when).toISOString() }));
        out.push(stanza.toString());
      } catch (err) {
        this.log.error('unreadable room archive entry', { room: room.jid, id: e.id, error: String(err) });
      }
      if (out.length === count) break;
    }
    return out.reverse();
  }

  /** Who may read a room's archive: occupants, members, and anyone for a public open room. */
  checkAccess(room: Room, from: Jid): void {
    if (!this.archives(room)) throw new StanzaError('service-unavailable', 'this room keeps no archive');
    if (room.occupantOf(from.toString())) return;
    const affiliation = room.affiliationOf(from.bare);
    if (affiliation === 'outcast') throw new StanzaError('forbidden', 'you are banned from this room');
    if (affiliation !== 'none') return;
    if (room.config.public && !room.config.membersOnly && !room.config.password) return;
    throw new StanzaError('forbidden', 'only occupants and members may read this room’s archive');
  }

  /** Answers a query: the page as <result/> messages, then the <fin/> for the iq result. */
  query(room: Room, from: Jid, queryElement: Element, send: (m: Element) => void): Promise<Element> {
    this.checkAccess(room, from);
    const query: MamQuery = readMamQuery(queryElement);
    // `with` the room itself asks for everything; an occupant JID for what that nick said.
    if (query.with && query.with.bare === room.jid && !query.with.resource) delete query.with;
    return serveQuery({
      archive: this.store!,
      owner: room.jid,
      query,
      pageSize: { default: this.cfg.pageSize, max: this.cfg.maxPageSize },
      to: from.toString(),
      from: room.jid,
      send,
      selectWith: (jid) => ({ index: jid.toString() }),
      onBadEntry: (entry, err) =>
        this.log.error('unreadable room archive entry', { room: room.jid, id: entry.id, error: String(err) }),
    });
  }

  metadata(room: Room, from: Jid): Promise<Element> {
    this.checkAccess(room, from);
    return archiveMetadata(this.store!, room.jid);
  }

  /** The room is gone: so is its archive. */
  async remove(room: Room): Promise<void> {
    if (this.store) await this.store.removeOwner(room.jid);
  }
}

/** What a room keeps: what users' archives keep of a message (chat states and subject changes are not). */
function worthArchivingGroupchat(message: Element): boolean {
  if (message.getChild('subject')) return false;
  // worthArchiving() judges chat and normal messages: ask it about this one as if it were one.
  const type = message.attrs.type;
  message.attrs.type = 'normal';
  try {
    return worthArchiving(message);
  } finally {
    message.attrs.type = type!;
  }
}
