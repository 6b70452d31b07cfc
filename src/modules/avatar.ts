// User avatars across the three ways clients handle them (XEP-0398):
//  - XEP-0084 (PEP nodes urn:xmpp:avatar:data and :metadata) is where a
//    user's avatar lives.
//  - vCard PHOTO (XEP-0054/0153): a vCard read by someone who may see the
//    PEP avatar carries it as PHOTO, injected when read (XEP-0398 §6.2's
//    alternative to copying), so the two cannot drift apart and the PEP
//    access model still decides who sees it. A legacy client that sets a
//    vCard with a PHOTO publishes that picture to PEP (data, then
//    metadata), open like the vCard it came in.
//  - XEP-0153 presence hashes: every available presence of the user that
//    carries no photo of its own gets the PEP avatar's id, which is the
//    SHA-1 the vCard PHOTO hashes to.
// The MSN transport reads the same view (`profile`, with the XEP-0172 PEP
// nick as NICKNAME) for the user's display picture and friendly name.
import type { ServerContext } from '../host/context.ts';
import type { Module, StanzaEvent } from '../host/host.ts';
import { Jid } from '../jid/jid.ts';
import { sha1Hex } from '../storage/avatars.ts';
import { detached } from '../stream/inbound-context.ts';
import type { StorageBackend } from '../storage/types.ts';
import { VcardStore } from '../storage/vcard.ts';
import { type Element, el } from '../xml/element.ts';
import { NS } from '../xml/namespaces.ts';
import { Pep } from './pep.ts';

export interface UserAvatar {
  /** Hex SHA-1 of the image: the XEP-0084 item id and XEP-0153 hash. */
  id: string;
  type: string;
  data: Buffer;
}

/** The user's current avatar; null when they removed it; undefined when PEP has none at all. */
export type AvatarState = UserAvatar | null | undefined;

const AVATAR_NODES = new Set<string>([NS.avatarMetadata, NS.avatarData]);
const LOADED = 'avatar:hash-loaded';

export class UserAvatars {
  private readonly pep: Pep;
  private readonly vcards: VcardStore;
  /** Avatar ids of users with bound resources (null: none), for synchronous presence stamping. */
  readonly ids = new Map<string, string | null>();
  private readonly loading = new Map<string, Promise<void>>();

  constructor(
    _backend: StorageBackend,
    private readonly server: ServerContext,
  ) {
    this.pep = server.store(Pep);
    this.vcards = server.store(VcardStore);
  }

  /** The avatar the user's XEP-0084 metadata points at (the first info without a URL), its data checked against its id. */
  async current(user: string): Promise<AvatarState> {
    const meta = (await this.pep.lastItem(user, NS.avatarMetadata))?.payload;
    if (!meta?.is('metadata', NS.avatarMetadata)) return undefined;
    const info = meta.getChildren('info').find((i) => !i.attrs.url && i.attrs.id);
    if (!info) return null;
    const [item] = await this.pep.store.items(user, NS.avatarData, { ids: [info.attrs.id!] });
    const b64 = item?.payload ? /<data[^>]*>([^<]*)<\/data>/.exec(item.payload)?.[1] : undefined;
    if (!b64) return undefined;
    const data = Buffer.from(b64.replace(/\s+/g, ''), 'base64');
    // XEP-0398 §3.1: the id is the SHA-1 of the image; anything else is not trusted.
    if (sha1Hex(data) !== info.attrs.id) return undefined;
    return { id: info.attrs.id!, type: info.attrs.type ?? 'image/png', data };
  }

  /** Whether `requester` may read the user's avatar data node. */
  private async mayRead(user: string, requester: Jid): Promise<boolean> {
    if (requester.bare === user) return true;
    const service = this.pep.service(user);
    const node = await service.getNode(NS.avatarData);
    return node !== undefined && (await service.readDenied(node, requester)) === null;
  }

  /** The user's vCard as `requester` may see it: with the PEP avatar as PHOTO where they may see that. */
  async vcardFor(user: string, requester: Jid): Promise<Element | undefined> {
    const stored = await this.vcards.get(user);
    const avatar = await this.current(user);
    if (avatar === undefined || !(await this.mayRead(user, requester))) return stored;
    // The same picture as stored (the usual case after a vCard set): the vCard as the client wrote it, byte for byte.
    const storedPhoto = stored?.getChild('PHOTO')?.getChildText('BINVAL');
    if (avatar && storedPhoto && sha1Hex(Buffer.from(storedPhoto.replace(/\s+/g, ''), 'base64')) === avatar.id) return stored;
    const card = stored ?? el('vCard', { xmlns: NS.vcard });
    for (const p of card.getChildren('PHOTO')) card.remove(p);
    if (avatar) {
      card.cnode(el('PHOTO', null, el('TYPE', null, avatar.type), el('BINVAL', null, avatar.data.toString('base64'))));
    }
    return card;
  }

  /** The owner's own profile as the transport uses it: vCard, PEP avatar as PHOTO, PEP nick as NICKNAME. */
  async profile(user: string): Promise<Element | undefined> {
    let card = await this.vcardFor(user, Jid.parse(user));
    const nick = (await this.pep.lastItem(user, NS.nick))?.payload;
    if (nick?.is('nick', NS.nick) && nick.getText().trim()) {
      card ??= el('vCard', { xmlns: NS.vcard });
      for (const n of card.getChildren('NICKNAME')) card.remove(n);
      card.cnode(el('NICKNAME', null, nick.getText().trim()));
    }
    return card;
  }

  /**
   * A vCard was stored (XEP-0398 §3.2): a new picture in it is published to
   * PEP; a vCard without one takes away an avatar that itself came from a
   * vCard (published by the server, a bare-JID publisher), never one a PEP
   * client published.
   */
  async fromVcard(user: string, card: Element): Promise<void> {
    const photo = card.getChild('PHOTO');
    const binval = photo?.getChildText('BINVAL')?.replace(/\s+/g, '');
    const data = binval ? Buffer.from(binval, 'base64') : undefined;
    const type = data && (photo!.getChildText('TYPE')?.trim() || sniffType(data));
    if (!data || !binval || !type || sniffType(data) === 'application/octet-stream') {
      const meta = await this.pep.lastItem(user, NS.avatarMetadata);
      if (meta?.payload?.getChild('info') && !Jid.parse(meta.publisher).resource) {
        await this.pep.publishAs(user, NS.avatarMetadata, { payload: el('metadata', { xmlns: NS.avatarMetadata }) });
      }
      return;
    }
    const id = sha1Hex(data);
    const now = await this.current(user);
    if (now?.id === id) return;
    const service = this.pep.service(user);
    const owner = Jid.parse(user);
    for (const node of [NS.avatarData, NS.avatarMetadata]) {
      if (!(await service.getNode(node))) {
        // The picture came in a vCard, which anyone may read: the nodes are open too.
        await service.create(owner, node, {
          type: 'submit',
          fields: new Map([['pubsub#access_model', { var: 'pubsub#access_model', values: ['open'] }]]),
        });
      }
    }
    await this.pep.publishAs(user, NS.avatarData, { id, payload: el('data', { xmlns: NS.avatarData }, binval) });
    await this.pep.publishAs(user, NS.avatarMetadata, {
      id,
      payload: el('metadata', { xmlns: NS.avatarMetadata }, el('info', { id, bytes: data.length, type })),
    });
  }

  /** Loads a user's avatar id for presence stamping (once while they are online). */
  load(user: string): Promise<void> {
    if (this.ids.has(user)) return Promise.resolve();
    let p = this.loading.get(user);
    if (!p) {
      p = this.current(user)
        .then((a) => {
          this.ids.set(user, a ? a.id : null);
        })
        .catch((err) => {
          this.server.log.warn('avatar lookup failed', { user, error: String(err) });
          this.ids.set(user, null);
        })
        .finally(() => this.loading.delete(user));
      this.loading.set(user, p);
    }
    return p;
  }
}

/** MIME type from an image's first bytes (a vCard PHOTO may lack TYPE). */
function sniffType(data: Buffer): string {
  if (data.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'image/png';
  if (data[0] === 0xff && data[1] === 0xd8) return 'image/jpeg';
  if (data.subarray(0, 4).toString('latin1') === 'GIF8') return 'image/gif';
  if (data.subarray(0, 4).toString('latin1') === 'RIFF' && data.subarray(8, 12).toString('latin1') === 'WEBP') return 'image/webp';
  return 'application/octet-stream';
}

/**
 * XEP-0398 §5: the avatar hash in an available presence that has no photo
 * of its own. An empty photo element means "no avatar" and stays.
 */
function stamp(presence: Element, id: string | null | undefined): void {
  if (!id) return;
  let x = presence.getChild('x', NS.vcardUpdate);
  if (x?.getChild('photo')) return;
  if (!x) {
    x = el('x', { xmlns: NS.vcardUpdate });
    presence.cnode(x);
  }
  x.cnode(el('photo', null, id));
}

export const avatarModule: Module = (host) => {
  const { server } = host;
  const avatars = server.store(UserAvatars);
  const pep = server.store(Pep);
  host.accountFeatures.add('urn:xmpp:pep-vcard-conversion:0');

  // A cache warm-up, not part of the bind: outside the stanza's context, so
  // the bind result does not wait for it (storage/durability.ts).
  host.sessionEvents.hook('resource-bind', ({ session }) => {
    void detached(() => avatars.load(session.jid.bare));
  });
  host.sessionEvents.hook('resource-unbind', ({ session }) => {
    const user = session.jid.bare;
    if (server.sessions.resources(user).every((s) => s === session)) avatars.ids.delete(user);
  });

  // A new or removed avatar: the next presences carry its hash.
  pep.onNotification(async (n) => {
    if (!AVATAR_NODES.has(n.node.name) || !avatars.ids.has(n.service)) return;
    const a = await avatars.current(n.service);
    avatars.ids.set(n.service, a ? a.id : null);
  });

  // Every available presence a user sends, broadcast or directed (MUC joins
  // too), ahead of the modules that deliver it. The id is normally loaded
  // at resource bind; a presence that beats the load waits for it and then
  // goes through the chain again, in order (later ones queue behind it).
  for (const dest of ['self', 'bare', 'full', 'host']) {
    const event = `pre-presence/${dest}`;
    host.hook(
      event,
      (e: StanzaEvent) => {
        if (e.origin.kind !== 'c2s' || e.stanza.attrs.type !== undefined || e.stanza.getChild('x', NS.vcardUpdate)?.getChild('photo')) {
          return false;
        }
        const user = e.from.bare;
        if (avatars.ids.has(user) || e.origin.session.data.has(LOADED)) {
          stamp(e.stanza, avatars.ids.get(user));
          return false;
        }
        const session = e.origin.session;
        return avatars.load(user).then(() => {
          session.data.set(LOADED, true);
          const again = host.events.fire(event, e);
          if (again === false) server.router.route(e.stanza, e.origin);
          return again;
        });
      },
      1000,
    );
  }
};
