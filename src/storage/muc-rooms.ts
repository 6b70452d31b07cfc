// Multi-user chat rooms that outlive their occupants (XEP-0045 persistent
// rooms): configuration, affiliations, subject and the key occupant ids
// are derived from, one record per room keyed by the room's bare JID; and
// the room history as it stood at the last clean shutdown, kept apart so
// the record stays small. Shaped for a table per kind in SQL (`muc_rooms
// (jid primary key, record json)`, `muc_history (jid primary key, stanzas
// json)`). Temporary rooms are never stored.
import type { KeyValueStore, StorageBackend } from './types.ts';

export type Affiliation = 'owner' | 'admin' | 'member' | 'outcast' | 'none';
export type Role = 'moderator' | 'participant' | 'visitor' | 'none';
export type Whois = 'moderators' | 'anyone';
export type AllowPm = 'anyone' | 'participants' | 'moderators' | 'none';

export interface RoomConfig {
  name: string;
  description: string;
  language: string;
  persistent: boolean;
  /** Listed in the service's disco#items. */
  public: boolean;
  membersOnly: boolean;
  moderated: boolean;
  /** Empty: no password. */
  password: string;
  whois: Whois;
  /** Whether participants (not only moderators) may change the subject. */
  changeSubject: boolean;
  /** Whether members (not only admins) may invite to a members-only room. */
  allowInvites: boolean;
  allowPm: AllowPm;
  /** 0: the service's limit. */
  maxUsers: number;
  historyLength: number;
  /** Whether the room's messages go to its archive (XEP-0313 on the room). */
  archive: boolean;
}

export interface AffiliationRecord {
  affiliation: Exclude<Affiliation, 'none'>;
  reason?: string;
}

export interface SubjectRecord {
  text: string;
  /** The occupant JID (room/nick) that set it, or the room's own JID. */
  from: string;
  /** ISO 8601 time it was set. */
  at: string;
}

export interface RoomRecord {
  jid: string;
  /** Bare JID of whoever created the room (counts against muc.maxRoomsPerUser). */
  creator: string;
  created: string;
  config: RoomConfig;
  /** Bare JID → affiliation (owners, admins, members, outcasts). */
  affiliations: Record<string, AffiliationRecord>;
  subject: SubjectRecord | null;
  /** Key of the room's XEP-0421 occupant ids (base64): stable across restarts. */
  occupantIdKey: string;
}

export class MucRoomStore {
  private readonly rooms: KeyValueStore<RoomRecord>;
  private readonly history: KeyValueStore<string[]>;

  constructor(backend: StorageBackend) {
    this.rooms = backend.keyValue<RoomRecord>('muc-rooms');
    this.history = backend.keyValue<string[]>('muc-history');
  }

  /** Every stored room of one service domain. */
  async *roomsOf(domain: string): AsyncIterable<RoomRecord> {
    const suffix = `@${domain}`;
    for await (const key of this.rooms.keys()) {
      if (!key.endsWith(suffix)) continue;
      const record = await this.rooms.get(key);
      if (record) yield record;
    }
  }

  /** One stored room, or undefined if it is not stored (temporary, destroyed, never made). */
  get(jid: string): Promise<RoomRecord | undefined> {
    return this.rooms.get(jid);
  }

  save(record: RoomRecord): Promise<void> {
    return this.rooms.set(record.jid, record);
  }

  async delete(jid: string): Promise<void> {
    await this.rooms.delete(jid);
    await this.history.delete(jid);
  }

  /** The room's history as serialised stanzas, oldest first. */
  async getHistory(jid: string): Promise<string[]> {
    return (await this.history.get(jid)) ?? [];
  }

  saveHistory(jid: string, stanzas: string[]): Promise<void> {
    return stanzas.length ? this.history.set(jid, stanzas) : this.history.delete(jid);
  }
}
