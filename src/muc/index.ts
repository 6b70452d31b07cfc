// The MUC service's module (XEP-0045 at muc.domain, conference.<domain> by
// default): hooks every stanza addressed to the service, its rooms and
// their occupants, and hands it to the room. Rooms live in memory; the
// persistent ones are stored through MucRoomStore.
import type { Module, StanzaEvent } from '../host/host.ts';
import { sendResult } from '../host/iq-result.ts';
import type { Jid } from '../jid/jid.ts';
import { el, firstChild } from '../xml/element.ts';
import { StanzaError } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';
import { roomInfo, roomItems, serviceItems } from './disco.ts';
import { queryForm } from '../mam/query.ts';
import { iqRequest, iqResponse } from './iq-proxy.ts';
import type { Room } from './room.ts';
import { adminGet, adminSet } from './room-admin.ts';
import { occupantError, privateMessage, roomMessage } from './room-messages.ts';
import { ownerGet, ownerSet } from './room-owner.ts';
import { availablePresence, leave } from './room-presence.ts';
import { MucService } from './service.ts';

export const mucModule: Module = async (host) => {
  const service = new MucService(host);
  await service.load();
  // Cluster mode: a room this node takes over is read again from storage first.
  host.server.router.claimHooks.set('room:', (key) => {
    const at = key.lastIndexOf('@');
    if (key.slice(at + 1) === host.name) return service.takeOver(key.slice(0, at));
  });
  host.identities.push({ category: 'conference', type: 'text', name: 'Chatrooms' });
  for (const f of [NS.discoInfo, NS.discoItems, NS.muc, NS.ping]) host.features.add(f);
  host.onStop(() => service.stop());

  const noRoom = () => new StanzaError('item-not-found', 'no such room');
  /** The room a stanza is for; a locked room exists only for its owner (§10.1.1). */
  const roomFor = (to: Jid, from: Jid): Room | undefined => {
    const room = service.rooms.get(to.local);
    if (room?.locked && room.affiliationOf(from.bare) !== 'owner') return undefined;
    return room;
  };

  // ---- presence to occupant JIDs ------------------------------------------
  host.hook('presence/full', (e) => {
    const type = e.stanza.attrs.type;
    const existing = service.rooms.get(e.to.local);
    if (type === 'error') {
      if (existing) occupantError(existing, e.from, e.stanza);
      return true;
    }
    if (type === 'unavailable') {
      if (existing) leave(existing, e.from, e.stanza);
      return true;
    }
    // Probes and subscriptions mean nothing to a room.
    if (type !== undefined) return true;
    if (existing) {
      availablePresence(existing, e.from, e.to.resource, e.stanza, false);
      return true;
    }
    // A client that speaks MUC gets a locked room to configure; an old
    // groupchat-1.0 client gets an instant room (§7.2.1, §10.1.1).
    const speaksMuc = e.stanza.getChild('x', NS.muc) !== undefined;
    const room = service.create(e.to.local, e.from, { locked: speaksMuc });
    try {
      availablePresence(room, e.from, e.to.resource, e.stanza, true);
    } catch (err) {
      room.destroy({});
      throw err;
    }
    return true;
  });
  // §7.2.1: entering needs a nickname.
  host.hook('presence/bare', (e) => {
    if (e.stanza.attrs.type === undefined) {
      throw new StanzaError('jid-malformed', 'enter a room as room@service/nickname');
    }
    return true;
  });
  host.hook('presence/host', () => true);

  // ---- messages -------------------------------------------------------------
  host.hook('message/bare', (e) => {
    const room = roomFor(e.to, e.from);
    if (!room) {
      if (e.stanza.attrs.type === 'error') return true;
      throw noRoom();
    }
    return roomMessage(room, e.from, e.stanza, service);
  });
  host.hook('message/full', (e) => {
    const room = roomFor(e.to, e.from);
    if (!room) {
      if (e.stanza.attrs.type === 'error') return true;
      throw noRoom();
    }
    privateMessage(room, e.from, e.to.resource, e.stanza);
    return true;
  });
  host.hook('message/host', (e) => e.stanza.attrs.type === 'error' || undefined);

  // ---- iqs ---------------------------------------------------------------------
  const isAnswer = (e: StanzaEvent) => e.stanza.attrs.type === 'result' || e.stanza.attrs.type === 'error';
  // Every iq to an occupant JID: forwarded (or a self-ping answered), before payload dispatch.
  host.hook(
    'iq/full',
    (e) => {
      const room = roomFor(e.to, e.from);
      if (isAnswer(e)) {
        if (room) iqResponse(room, e.from, e.stanza);
        return true;
      }
      if (!room) throw noRoom();
      iqRequest(room, e.from, e.to.resource, e.stanza);
      return true;
    },
    1,
  );
  host.hook('iq/bare', (e) => isAnswer(e) || undefined, 1);
  host.hook('iq/host', (e) => isAnswer(e) || undefined, 1);

  const onRoom = (event: string, handler: (room: Room, e: StanzaEvent) => unknown) =>
    host.hook(event, (e) => {
      const room = roomFor(e.to, e.from);
      if (!room) throw noRoom();
      const result = handler(room, e);
      return result instanceof Promise ? result : true;
    });

  onRoom(`iq-get/bare/${NS.discoInfo}:query`, (room, e) => {
    if (firstChild(e.stanza)?.attrs.node) throw new StanzaError('item-not-found', 'no such node');
    sendResult(e, roomInfo(room, service.archive.features(room)));
  });
  onRoom(`iq-get/bare/${NS.discoItems}:query`, (room, e) => {
    if (firstChild(e.stanza)?.attrs.node) throw new StanzaError('item-not-found', 'no such node');
    sendResult(e, roomItems(room, e.from));
  });
  onRoom(`iq-get/bare/${NS.mucAdmin}:query`, (room, e) =>
    sendResult(e, adminGet(room, e.from, firstChild(e.stanza)!)),
  );
  onRoom(`iq-set/bare/${NS.mucAdmin}:query`, async (room, e) => {
    await adminSet(room, e.from, firstChild(e.stanza)!);
    sendResult(e);
  });
  onRoom(`iq-get/bare/${NS.mucOwner}:query`, (room, e) =>
    sendResult(e, ownerGet(room, e.from, service.archive.available)),
  );
  onRoom(`iq-set/bare/${NS.mucOwner}:query`, async (room, e) => {
    await ownerSet(room, e.from, firstChild(e.stanza)!);
    sendResult(e);
  });
  onRoom(`iq-get/bare/${NS.ping}:ping`, (_room, e) => sendResult(e));

  // ---- the room's archive (XEP-0313) ----------------------------------------------
  onRoom(`iq-set/bare/${NS.mam}:query`, async (room, e) => {
    const session = e.origin.kind === 'c2s' ? e.origin.session : undefined;
    const fin = await service.archive.query(room, e.from, firstChild(e.stanza)!, (m) =>
      // Results go ahead of the iq result: straight to a local session, else routed in order.
      session ? session.send(m) : host.server.router.route(m),
    );
    sendResult(e, fin);
  });
  onRoom(`iq-get/bare/${NS.mam}:query`, (room, e) => {
    service.archive.checkAccess(room, e.from);
    sendResult(e, queryForm());
  });
  onRoom(`iq-get/bare/${NS.mam}:metadata`, async (room, e) =>
    sendResult(e, await service.archive.metadata(room, e.from)),
  );

  // ---- the service itself -------------------------------------------------------
  host.hook(`iq-get/host/${NS.discoInfo}:query`, (e) => {
    if (firstChild(e.stanza)?.attrs.node) throw new StanzaError('item-not-found', 'no such node');
    const query = el('query', { xmlns: NS.discoInfo });
    for (const i of host.identities)
      query.cnode(el('identity', { category: i.category, type: i.type, name: i.name }));
    for (const f of [...host.features].sort()) query.cnode(el('feature', { var: f }));
    sendResult(e, query);
    return true;
  });
  host.hook(`iq-get/host/${NS.discoItems}:query`, (e) => {
    if (firstChild(e.stanza)?.attrs.node) throw new StanzaError('item-not-found', 'no such node');
    sendResult(e, serviceItems(service.rooms.values()));
    return true;
  });
  host.hook(`iq-get/host/${NS.ping}:ping`, (e) => {
    sendResult(e);
    return true;
  });
};
