// One registered user's MSN login, shared by all of the user's resources.
// It owns the MsnSession (which owns reconnects) and translates both ways:
// MSN events become stanzas from contact JIDs; the user's presence, vCard
// and roster actions become MSN calls. MSN events are handled strictly in
// arrival order (one promise chain), so a roster sync always lands before
// the presences that follow it.
import type { Jid } from '../../jid/jid.ts';
import {
  type DisconnectedEvent,
  MsnAuthError,
  type MsnContact,
  MsnSession,
  type MessageEvent,
  type SettableStatus,
} from '../../msnp/index.ts';
import { type Element, el } from '../../xml/element.ts';
import { NS } from '../../xml/namespaces.ts';
import { sha1Hex } from './avatars.ts';
import { contactPresence } from './contact-presence.ts';
import type { MsnGateway } from './gateway.ts';
import { Groupchats } from './groupchat.ts';
import { offerRosterSubsync, syncRosterDirect } from './roster-sync.ts';
import { showToMsn } from './status-map.ts';
import { Limiter } from '../../util/limiter.ts';

export interface SessionRegistration {
  email: string;
  password: string;
  directRosterSync: boolean;
}

/** Display-picture transfers one session runs at once. */
const AVATAR_TRANSFERS = 2;

interface ResourceState {
  presence: Element;
  priority: number;
  /** The resource is online but invisible: MSN shows us offline (HDN). */
  invisible: boolean;
}

export class UserSession {
  readonly msn: MsnSession;
  readonly groupchats: Groupchats;
  online = false;
  private closed = false;
  private readonly resources = new Map<string, ResourceState>();
  private chain: Promise<void> = Promise.resolve();
  /** Contact email → XEP-0153 hash of its current picture, once fetched. */
  private readonly photoHashes = new Map<string, string>();
  private readonly fetching = new Set<string>();
  private readonly transfers = new Limiter(AVATAR_TRANSFERS);
  /** The last own-avatar hash and nickname applied from the user's presence. */
  private ownPhotoHash: string | undefined;
  private ownNickname: string | undefined;
  private lastStatus: { code: SettableStatus; psm: string } | null = null;

  constructor(
    readonly gw: MsnGateway,
    readonly user: Jid,
    readonly reg: SessionRegistration,
  ) {
    this.msn = new MsnSession(gw.msnOptions(reg.email, reg.password, user.bare));
    this.groupchats = new Groupchats(this);
    this.wire();
  }

  get bare(): string {
    return this.user.bare;
  }

  /** Runs MSN-side work in arrival order; failures are logged, never thrown. */
  private enqueue(what: string, work: () => Promise<void> | void): void {
    this.chain = this.chain.then(work).catch((err) => {
      this.gw.host.log.warn(`${what} failed`, { user: this.bare, error: String((err as Error)?.message ?? err) });
    });
  }

  /** Keeps the operator-visible state (status.ts) in step with the MSN session, and logs each change at debug. */
  private trackState(): void {
    const gw = this.gw;
    const status = { user: this.bare, email: this.reg.email, state: 'offline' as const, since: new Date().toISOString() };
    const previous = gw.userStatus.get(this.bare);
    gw.userStatus.set(this.bare, previous?.email === this.reg.email ? { ...previous, ...status } : status);
    this.msn.on('state', (ev) => {
      const now = new Date().toISOString();
      const cur = gw.userStatus.get(this.bare);
      // A newer session of the same user (re-registration) owns the record.
      const current = gw.sessions.get(this.bare);
      if (!cur || (current !== undefined && current !== this)) return;
      if (ev.state !== ev.previous) {
        cur.state = ev.state;
        cur.since = now;
      }
      if (ev.state === 'online') {
        cur.protocol = this.msn.protocol;
        delete cur.reconnectAttempts;
      }
      if (ev.error) {
        cur.lastError = { message: ev.error.message, at: now };
        if (ev.state === 'reconnecting') cur.reconnectAttempts = (cur.reconnectAttempts ?? 0) + 1;
      }
      gw.host.log.debug('msn session state', {
        user: this.bare,
        from: ev.previous,
        to: ev.state,
        reason: ev.reason,
        error: ev.error?.message,
      });
    });
  }

  private wire(): void {
    const m = this.msn;
    this.trackState();
    m.on('error', (err) => this.gw.host.log.debug('msn error', { user: this.bare, error: String(err) }));
    m.on('connected', () =>
      this.enqueue('connected', async () => {
        this.online = true;
        this.gw.host.log.info('logged in to MSN', { user: this.bare, email: this.reg.email });
        this.sendGatewayPresence();
        // The session logged in with the status set before login (no online blip
        // for an invisible or away user); presence that arrived meanwhile applies now.
        this.lastStatus = { code: this.msn.status, psm: this.msn.personalMessage };
        await this.applyStatus();
        this.gw.settle(this.bare, this);
        await this.applyOwnVcard(true);
      }),
    );
    m.on('contactList', ({ contacts, groups }) =>
      this.enqueue('roster sync', async () => {
        if (this.reg.directRosterSync && this.gw.users.managesRoster(this.user)) {
          await syncRosterDirect(this.gw, this.bare, contacts, groups);
        } else {
          offerRosterSubsync(this.gw, this.bare, contacts, groups);
        }
        // Contacts who added us and wait for an answer (MSN's pending list).
        for (const c of contacts) if (isPendingRequest(c)) this.sendSubscribeRequest(c.email, c.nickname);
      }),
    );
    m.on('presence', ({ email }) => this.enqueue('presence', () => this.sendContactPresence(email)));
    m.on('personalMessage', ({ email }) => this.enqueue('psm', () => this.sendContactPresence(email)));
    m.on('nickname', ({ email }) => {
      if (email !== this.reg.email.toLowerCase()) this.enqueue('nickname', () => this.sendContactPresence(email));
    });
    m.on('avatar', ({ email }) => this.enqueue('avatar', () => this.refreshAvatar(email)));
    m.on('addedBy', ({ email, nickname }) => this.enqueue('added by', () => this.sendSubscribeRequest(email, nickname)));
    m.on('contactAdded', ({ email, list }) => {
      if (list === 'FL' || list === 'AL' || list === 'BL') this.enqueue('contact added', () => this.resyncContact(email));
    });
    m.on('contactRemoved', ({ email, list }) => {
      if (list === 'FL' || list === 'AL' || list === 'BL') this.enqueue('contact removed', () => this.resyncContact(email));
    });
    m.on('message', (ev) => this.enqueue('message', () => this.onMessage(ev)));
    m.on('typing', ({ from, conversationId }) =>
      this.enqueue('typing', () => {
        if (conversationId) return;
        this.gw.send(
          el(
            'message',
            { type: 'chat', from: this.gw.contactJid(from), to: this.bare },
            el('composing', { xmlns: NS.chatStates }),
            el('x', { xmlns: NS.events }, el('composing'), el('id')),
          ),
        );
      }),
    );
    // Offline messages (OIM) that waited for the user: sent now, from the
    // contact, stamped with when they were written (XEP-0203). Routed at once,
    // before the library deletes them on the server.
    m.on('offlineMessage', (ev) => {
      this.gw.send(
        el(
          'message',
          { type: 'chat', from: this.gw.contactJid(ev.from), to: this.bare },
          el('body', null, ev.text),
          el('delay', { xmlns: NS.delay, from: this.gw.domain, stamp: ev.sent.toISOString() }, 'Offline message on MSN'),
        ),
      );
    });
    // A contact's file: accepted (within limits) and stored outside the event
    // chain, so a large transfer does not hold up messages.
    m.on('fileOffer', (offer) => {
      this.gw.files.onOffer(this.bare, this.gw.contactJid(offer.from), offer).catch((err) =>
        this.gw.host.log.warn('msn file offer failed', { user: this.bare, error: String(err) }),
      );
    });
    m.on('endpoints', ({ endpoints }) => {
      const cur = this.gw.userStatus.get(this.bare);
      if (cur) cur.otherEndpoints = endpoints.map((e) => e.name ?? e.id);
      this.gw.host.log.debug('msn endpoints', { user: this.bare, others: endpoints.map((e) => e.name ?? e.id).join(',') });
    });
    m.on('nudge', ({ from, conversationId }) =>
      this.enqueue('nudge', () => {
        if (conversationId) return;
        // XEP-0224 attention; the body is for clients that do not know it.
        const name = this.contact(from)?.nickname || from;
        this.gw.send(
          el(
            'message',
            { type: 'headline', from: this.gw.contactJid(from), to: this.bare },
            el('attention', { xmlns: NS.attention }),
            el('body', null, `${name} sent you a nudge!`),
          ),
        );
      }),
    );
    m.on('conversation', (ev) => this.enqueue('conversation', () => this.groupchats.onConversation(ev)));
    m.on('disconnected', (ev) => this.enqueue('disconnected', () => this.onDisconnected(ev)));
  }

  /** Logs in; rejects (and tells the user) when MSN refuses. */
  async start(): Promise<void> {
    try {
      // Stored by the (offline) session and sent as the login's first CHG.
      const want = this.wantedStatus();
      if (want) {
        await this.msn.setStatus(want.code);
        await this.msn.setPersonalMessage(want.psm);
      }
      await this.msn.login();
    } catch (err) {
      this.notifyUser(
        err instanceof MsnAuthError
          ? 'MSN refused your address or password. Register again with the right password.'
          : `Could not connect to MSN: ${(err as Error).message}`,
      );
      await this.close();
      throw err;
    }
  }

  // ------------------------------------------------------------ XMPP → MSN

  /** Available presence from one of the user's resources. */
  presenceFrom(from: Jid, presence: Element): void {
    const priority = Number.parseInt(presence.getChildText('priority') ?? '0', 10) || 0;
    this.resources.set(from.toString(), { presence, priority, invisible: presence.attrs.type === 'invisible' });
    this.enqueue('status', () => this.applyStatus());
    const update = presence.getChild('x', NS.vcardUpdate);
    if (update) this.enqueue('vcard update', () => this.onVcardUpdate(update));
  }

  /** Unavailable from a resource; returns true when no resource is left. */
  unavailableFrom(from: Jid): boolean {
    this.resources.delete(from.toString());
    if (this.resources.size === 0) return true;
    this.enqueue('status', () => this.applyStatus());
    return false;
  }

  get hasResources(): boolean {
    return this.resources.size > 0;
  }

  /** The presence that wins: highest priority, latest among equals. */
  private currentPresence(): ResourceState | undefined {
    let best: ResourceState | undefined;
    for (const r of this.resources.values()) if (!best || r.priority >= best.priority) best = r;
    return best;
  }

  /** The MSN status and personal message the user's presence asks for. */
  private wantedStatus(): { code: SettableStatus; psm: string } | undefined {
    const r = this.currentPresence();
    if (!r) return undefined;
    return {
      code: showToMsn(r.presence.getChildText('show') ?? undefined, r.invisible),
      psm: r.presence.getChildText('status') ?? '',
    };
  }

  private async applyStatus(): Promise<void> {
    const want = this.wantedStatus();
    if (!want || !this.msn.connected) return;
    const { code, psm } = want;
    if (this.lastStatus?.code !== code) await this.msn.setStatus(code);
    if (this.lastStatus?.psm !== psm) await this.msn.setPersonalMessage(psm);
    this.lastStatus = { code, psm };
  }

  /**
   * XEP-0153 update from the user: a new photo hash means the vCard changed
   * (re-read it: nickname and picture); the same hash with a new nickname
   * only renames (the seed's rule).
   */
  private async onVcardUpdate(x: Element): Promise<void> {
    const photo = x.getChildText('photo');
    const nickname = x.getChildText('nickname');
    if (photo !== null && photo !== this.ownPhotoHash) {
      await this.applyOwnVcard(false);
    } else if (nickname && nickname !== this.ownNickname && this.msn.connected) {
      this.ownNickname = nickname;
      await this.msn.setNickname(nickname);
    }
  }

  /** Reads the user's vCard (from the store in-process, else from the user's server): NICKNAME → friendly name, PHOTO → picture. */
  /** The user published a new PEP avatar or nick (own-pep.ts): read the profile again. */
  ownProfileChanged(): void {
    this.enqueue('own profile', () => this.applyOwnVcard(false));
  }

  private async applyOwnVcard(atLogin: boolean): Promise<void> {
    if (!this.msn.connected) return;
    const vcard = await this.gw.users.ownVcard(this.user);
    const nickname = vcard?.getChildText('NICKNAME')?.trim();
    if (nickname && nickname !== this.ownNickname) {
      this.ownNickname = nickname;
      await this.msn.setNickname(nickname);
    }
    const binval = vcard?.getChild('PHOTO')?.getChildText('BINVAL')?.replace(/\s+/g, '');
    if (!binval) {
      if (!atLogin && this.ownPhotoHash) await this.msn.setAvatar(null);
      this.ownPhotoHash = '';
      return;
    }
    const raw = Buffer.from(binval, 'base64');
    const hash = sha1Hex(raw);
    if (hash === this.ownPhotoHash) return;
    this.ownPhotoHash = hash;
    try {
      await this.msn.setAvatar(await this.gw.avatars.ownAvatar(raw));
    } catch (err) {
      this.gw.host.log.info('own avatar refused', { user: this.bare, error: (err as Error).message });
    }
  }

  // ------------------------------------------------------------ MSN → XMPP

  private contact(email: string): MsnContact | undefined {
    return this.msn.getContact(email);
  }

  private sendContactPresence(email: string, to = this.bare): void {
    const c = this.contact(email);
    if (!c?.lists.includes('FL')) return;
    this.gw.send(contactPresence(this.gw.contactJid(email), to, c, this.photoHashes.get(c.email)));
  }

  /** Answers a presence probe for a contact JID. */
  answerProbe(email: string, to: string): void {
    const c = this.contact(email);
    if (!c || !this.online) {
      this.gw.send(el('presence', { type: 'unavailable', from: this.gw.contactJid(email), to }));
      return;
    }
    this.sendContactPresence(email, to);
  }

  /** Sends every known contact's presence again (e.g. to a resource that just came online). */
  sendAllContactPresences(to: string): void {
    for (const c of this.msn.contacts) if (c.lists.includes('FL') && c.status !== 'FLN') this.sendContactPresence(c.email, to);
  }

  sendGatewayPresence(to = this.bare): void {
    this.gw.send(
      this.online
        ? el('presence', { from: this.gw.domain, to })
        : el('presence', { from: this.gw.domain, to, type: 'unavailable' }),
    );
  }

  private sendSubscribeRequest(email: string, nickname: string): void {
    this.gw.send(
      el(
        'presence',
        { type: 'subscribe', from: this.gw.contactJid(email), to: this.bare },
        el('status', null, `${nickname || email} has added you to their MSN contact list.`),
        nickname ? el('nick', { xmlns: NS.nick }, nickname) : null,
      ),
    );
  }

  /** One contact's lists changed on MSN (from here or another MSN client). */
  private async resyncContact(email: string): Promise<void> {
    if (this.reg.directRosterSync && this.gw.users.managesRoster(this.user)) {
      await syncRosterDirect(this.gw, this.bare, this.msn.contacts, this.msn.groups);
    }
    this.sendContactPresence(email);
  }

  private async refreshAvatar(email: string): Promise<void> {
    const c = this.contact(email);
    const sha1d = c?.msnObject?.sha1d;
    if (!c || !sha1d) {
      if (c && this.photoHashes.delete(c.email)) {
        this.sendContactPresence(c.email);
        this.gw.contactPep.changed(this, c.email, undefined); // XEP-0084 (contact-pep.ts)
      }
      return;
    }
    const cached = await this.gw.avatars.get(sha1d);
    if (cached) {
      this.photoHashes.set(c.email, cached.hash);
      this.sendContactPresence(c.email);
      this.gw.contactPep.changed(this, c.email, cached); // XEP-0084 (contact-pep.ts)
      return;
    }
    if (this.fetching.has(c.email)) return;
    this.fetching.add(c.email);
    // The transfer runs outside the event chain (a slow picture must not hold
    // up messages), a few at a time: each one opens a switchboard.
    void this.transfers
      .run(() => this.msn.fetchAvatar(c.email))
      .then((data) => this.gw.avatars.put(sha1d, data))
      .then(
        (avatar) => {
          this.photoHashes.set(c.email, avatar.hash);
          this.enqueue('avatar presence', () => {
            this.sendContactPresence(c.email);
            this.gw.contactPep.changed(this, c.email, avatar); // XEP-0084 (contact-pep.ts)
          });
        },
        (err) => this.gw.host.log.info('avatar fetch failed', { user: this.bare, contact: c.email, error: String(err) }),
      )
      .finally(() => this.fetching.delete(c.email));
  }

  /** The cached picture of a contact for its vCard, fetching it if needed. */
  async contactAvatar(email: string): Promise<{ hash: string; png: Buffer } | undefined> {
    const sha1d = this.contact(email)?.msnObject?.sha1d;
    if (!sha1d) return undefined;
    const cached = await this.gw.avatars.get(sha1d);
    if (cached) return cached;
    const avatar = await this.gw.avatars.put(sha1d, await this.msn.fetchAvatar(email));
    this.photoHashes.set(email.toLowerCase(), avatar.hash);
    return avatar;
  }

  private onMessage(ev: MessageEvent): void {
    if (ev.conversationId) {
      this.groupchats.onMessage(ev);
      return;
    }
    // To the bare JID through normal routing: carbons and offline storage apply.
    this.gw.send(
      el(
        'message',
        { type: 'chat', from: this.gw.contactJid(ev.from), to: this.bare },
        el('body', null, ev.text),
        el('active', { xmlns: NS.chatStates }),
      ),
    );
  }

  private onDisconnected(ev: DisconnectedEvent): void {
    // Closed or left already: close() and leave() said what the user must hear.
    if (this.closed) return;
    this.online = false;
    this.lastStatus = null;
    this.sendAllContactsUnavailable();
    if (ev.willReconnect) {
      this.gw.send(
        el('presence', { from: this.gw.domain, to: this.bare }, el('show', null, 'xa'), el('status', null, 'Reconnecting to MSN…')),
      );
      return;
    }
    if (ev.reason === 'otherLogin') {
      this.notifyUser('You were logged out of MSN because your account signed in from another place.');
    } else if (ev.reason === 'authFailed') {
      this.notifyUser('MSN refused your address or password. Register again with the right password.');
    }
    if (ev.reason !== 'logout') void this.close();
  }

  private sendAllContactsUnavailable(): void {
    for (const c of this.msn.contacts) {
      if (c.lists.includes('FL')) {
        this.gw.send(el('presence', { type: 'unavailable', from: this.gw.contactJid(c.email), to: this.bare }));
      }
    }
    this.groupchats.closeAll();
  }

  /** A headline-free chat message from the gateway itself. */
  notifyUser(text: string): void {
    this.gw.send(el('message', { type: 'chat', from: this.gw.domain, to: this.bare }, el('body', null, text)));
  }

  /** Logs out (when the last resource goes, on unregister, on shutdown). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.gw.contactPep.reset(this.bare);
    if (this.gw.sessions.get(this.bare) === this) this.gw.sessions.delete(this.bare);
    const wasOnline = this.online;
    this.online = false;
    this.gw.settle(this.bare, undefined);
    await this.msn.logout().catch(() => {});
    await this.chain;
    if (wasOnline) this.sendAllContactsUnavailable();
    this.sendGatewayPresence();
  }

  /**
   * Logs out without a word to the user (cluster: the user's home node moved
   * and the new one logs in; their contacts stay online for them).
   */
  async leave(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.gw.contactPep.reset(this.bare);
    if (this.gw.sessions.get(this.bare) === this) this.gw.sessions.delete(this.bare);
    this.online = false;
    this.gw.settle(this.bare, undefined);
    this.groupchats.closeAll();
    await this.msn.logout().catch(() => {});
    await this.chain;
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

/** A contact who added us (RL) and is neither allowed nor blocked yet. */
function isPendingRequest(c: MsnContact): boolean {
  return (c.lists.includes('RL') || c.lists.includes('PL')) && !c.lists.includes('AL') && !c.lists.includes('BL');
}
