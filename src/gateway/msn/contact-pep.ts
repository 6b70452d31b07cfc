// MSN contacts' display pictures and friendly names as PEP, as maintained
// gateways (Slidge) offer them, so clients that only use XEP-0084 avatars
// (Conversations, Dino, Monal...) show MSN pictures: each contact JID
// answers pubsub item requests for urn:xmpp:avatar:metadata, :data (from
// the server's avatar cache, the PNG whose SHA-1 is also the XEP-0153 hash
// and the vCard PHOTO) and http://jabber.org/protocol/nick, and tells the
// user's resources that want `urn:xmpp:avatar:metadata+notify` when a
// picture becomes known or changes, and once when such a resource comes
// online. Only the user whose MSN list holds the contact gets answers.
import type { StanzaEvent } from '../../host/host.ts';
import { sendResult } from '../../host/iq-result.ts';
import type { Jid } from '../../jid/jid.ts';
import { CapsCache } from '../../modules/caps.ts';
import { detached } from '../../stream/inbound-context.ts';
import { type Element, el, firstChild } from '../../xml/element.ts';
import { StanzaError } from '../../xml/errors.ts';
import { NS } from '../../xml/namespaces.ts';
import type { CachedAvatar } from './avatars.ts';
import type { MsnGateway } from './gateway.ts';
import type { UserSession } from './user-session.ts';

const WANT = `${NS.avatarMetadata}+notify`;

export class ContactPep {
  private readonly caps: CapsCache;
  /** user → contact email → hash last announced, so a repeated MSN event is not a new notification. */
  private readonly announced = new Map<string, Map<string, string>>();

  constructor(private readonly gw: MsnGateway) {
    this.caps = gw.server.store(CapsCache);
    // A resource of a user online on MSN says it wants avatars: the last picture of each contact.
    this.caps.onInterest((e) => {
      if (e.entity.bare !== e.user || !e.features.has(WANT) || e.previous?.has(WANT)) return;
      const s = gw.sessions.get(e.user);
      if (s?.online) void detached(() => this.announceAll(s, e.entity.toString()));
    });
  }

  /** A pubsub request to a contact JID. */
  async request(e: StanzaEvent): Promise<void> {
    const email = this.gw.emailOf(e.to);
    if (!email) throw new StanzaError('item-not-found');
    const s = this.gw.sessions.get(e.from.bare);
    if (!s?.online) throw new StanzaError('registration-required', 'log in to the MSN transport first');
    const contact = s.msn.getContact(email);
    if (!contact) throw new StanzaError('item-not-found', 'not on your MSN contact list');
    const items = firstChild(e.stanza)!.getChild('items');
    if (!items) throw new StanzaError('feature-not-implemented', 'MSN contacts only answer item requests');
    const node = items.attrs.node;
    const result = el('items', { node });
    if (node === NS.avatarMetadata) {
      const avatar = await this.avatarOf(s, email);
      if (avatar) result.cnode(el('item', { id: avatar.hash }, metadata(avatar)));
    } else if (node === NS.avatarData) {
      const wanted = items.getChildren('item').map((i) => i.attrs.id).filter((id): id is string => !!id);
      const ids = wanted.length ? wanted : [(await this.avatarOf(s, email))?.hash].filter((h): h is string => !!h);
      for (const id of ids) {
        const avatar = await this.gw.avatars.byHash(id);
        if (!avatar) throw new StanzaError('item-not-found', `no picture ${id}`);
        result.cnode(el('item', { id }, el('data', { xmlns: NS.avatarData }, avatar.png.toString('base64'))));
      }
    } else if (node === NS.nick) {
      result.cnode(el('item', { id: 'current' }, el('nick', { xmlns: NS.nick }, contact.nickname || email)));
    } else {
      throw new StanzaError('item-not-found', `MSN contacts have no node '${node ?? ''}'`);
    }
    sendResult(e, el('pubsub', { xmlns: NS.pubsub }, result));
  }

  private async avatarOf(s: UserSession, email: string): Promise<CachedAvatar | undefined> {
    return s.contactAvatar(email).catch((err: Error) => {
      this.gw.host.log.info('contact avatar unavailable', { contact: email, error: err.message });
      return undefined;
    });
  }

  /** A contact's picture became known or changed: tell the user's resources that want it. */
  changed(s: UserSession, email: string, avatar: CachedAvatar | undefined): void {
    let seen = this.announced.get(s.bare);
    if (!seen) {
      seen = new Map();
      this.announced.set(s.bare, seen);
    }
    const hash = avatar?.hash ?? '';
    if (seen.get(email) === hash) return;
    seen.set(email, hash);
    for (const to of this.recipients(s.user)) this.send(to, email, avatar);
  }

  /** Forgets what was announced (the user's MSN session ended). */
  reset(user: string): void {
    this.announced.delete(user);
  }

  private async announceAll(s: UserSession, to: string): Promise<void> {
    for (const c of s.msn.contacts) {
      const sha1d = c.msnObject?.sha1d;
      if (!c.lists.includes('FL') || !sha1d) continue;
      const avatar = await this.gw.avatars.get(sha1d);
      if (avatar) this.send(to, c.email, avatar);
    }
  }

  /** Local users: their resources whose caps ask for avatars; others: the bare JID. */
  private recipients(user: Jid): string[] {
    if (!this.gw.isLocalUser(user)) return [user.bare];
    const out: string[] = [];
    for (const [entity, features] of this.caps.entities(user.bare)) {
      if (entity.bare === user.bare && features.has(WANT)) out.push(entity.toString());
    }
    return out;
  }

  private send(to: string, email: string, avatar: CachedAvatar | undefined): void {
    // An empty metadata element says "no picture" (XEP-0084 §4.2).
    const item = avatar ? el('item', { id: avatar.hash }, metadata(avatar)) : el('item', { id: 'none' }, el('metadata', { xmlns: NS.avatarMetadata }));
    this.gw.send(
      el(
        'message',
        { from: this.gw.contactJid(email), to, type: 'headline' },
        el('event', { xmlns: NS.pubsubEvent }, el('items', { node: NS.avatarMetadata }, item)),
      ),
    );
  }
}

function metadata(a: CachedAvatar): Element {
  return el(
    'metadata',
    { xmlns: NS.avatarMetadata },
    el('info', { id: a.hash, bytes: a.png.length, type: 'image/png', width: a.width, height: a.height }),
  );
}
