// Service discovery of the MUC service and its rooms (XEP-0045 §6): the
// service lists its public rooms; a room describes itself with the
// muc_* features and the muc#roominfo form (XEP-0128), and lists its
// occupants to those inside.
import type { Jid } from '../jid/jid.ts';
import { type Element, el } from '../xml/element.ts';
import { buildForm } from '../xml/data-form.ts';
import { field } from './config-form.ts';
import { NS } from '../xml/namespaces.ts';
import type { Room } from './room.ts';

/** Room features that describe its configuration, as clients look for them (§15.3). */
export function roomFeatures(room: Room, extra: string[]): string[] {
  const c = room.config;
  return [
    NS.muc,
    NS.discoInfo,
    NS.discoItems,
    NS.occupantId,
    NS.mucSelfPing,
    NS.ping,
    c.persistent ? 'muc_persistent' : 'muc_temporary',
    c.public ? 'muc_public' : 'muc_hidden',
    c.membersOnly ? 'muc_membersonly' : 'muc_open',
    c.moderated ? 'muc_moderated' : 'muc_unmoderated',
    c.password ? 'muc_passwordprotected' : 'muc_unsecured',
    c.whois === 'anyone' ? 'muc_nonanonymous' : 'muc_semianonymous',
    ...extra,
  ];
}

export function roomInfo(room: Room, extraFeatures: string[]): Element {
  const query = el(
    'query',
    { xmlns: NS.discoInfo },
    el('identity', { category: 'conference', type: 'text', name: room.config.name || room.name }),
  );
  for (const f of [...new Set(roomFeatures(room, extraFeatures))].sort())
    query.cnode(el('feature', { var: f }));
  query.cnode(
    buildForm('result', NS.mucRoomInfo, [
      field('muc#roominfo_description', undefined, 'Description', room.config.description),
      field('muc#roominfo_occupants', undefined, 'Number of occupants', room.occupants.size),
      field('muc#roominfo_subject', undefined, 'Subject', room.subject?.text ?? ''),
      field('muc#roomconfig_roomname', undefined, 'Name', room.config.name),
      field('muc#roominfo_lang', undefined, 'Language', room.config.language),
      field(
        'muc#roomconfig_changesubject',
        undefined,
        'Occupants may change the subject',
        room.config.changeSubject,
      ),
      field(
        'muc#maxhistoryfetch',
        undefined,
        'Most messages shown to new occupants',
        room.config.historyLength,
      ),
    ]),
  );
  return query;
}

/** The occupants (room/nick), shown to those in the room only: who is inside is not for passers-by. */
export function roomItems(room: Room, from: Jid): Element {
  const query = el('query', { xmlns: NS.discoItems });
  if (!room.occupantOf(from.toString())) return query;
  for (const nick of room.occupants.keys())
    query.cnode(el('item', { jid: room.occupantJid(nick), name: nick }));
  return query;
}

/** The service's directory: public rooms that are open for business. */
export function serviceItems(rooms: Iterable<Room>): Element {
  const query = el('query', { xmlns: NS.discoItems });
  for (const room of rooms) {
    if (!room.config.public || room.locked) continue;
    query.cnode(el('item', { jid: room.jid, name: room.config.name || room.name }));
  }
  return query;
}
