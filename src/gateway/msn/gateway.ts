// The MSN transport as a host (msn.<domain>): inside jabberfly, or alone as
// an XEP-0114 component of another server. Either way it sends and receives
// stanzas through the router; how it reaches users' rosters and vCards is
// its UserServer (`user-server.ts`): in-process stores, or stanzas to the
// users' server. One UserSession (one MSN login) per registered bare JID,
// shared by all of the user's resources.
import { createHash } from 'node:crypto';
import type { Host } from '../../host/host.ts';
import type { Jid } from '../../jid/jid.ts';
import type { MsnSessionOptions } from '../../msnp/index.ts';
import type { ServerContext } from '../../host/context.ts';
import { type MsnRegistration, MsnRegistrationStore } from '../../storage/msn-registrations.ts';
import type { Element } from '../../xml/element.ts';
import { emailToJid, localToEmail } from './address.ts';
import { AvatarCache } from './avatars.ts';
import { ContactPep } from './contact-pep.ts';
import { GatewayFiles } from './files.ts';
import { SecretBox } from './secret-box.ts';
import type { UserServer } from './user-server.ts';
import type { MsnUserStatus } from './status.ts';
import type { UserSession } from './user-session.ts';

/** Builds how a gateway reaches its users' rosters and vCards. */
export type UserServerFactory = (gw: MsnGateway) => UserServer;

const gateways = new WeakMap<ServerContext, MsnGateway>();

/** The running gateway of a server, if the transport is enabled. */
export function msnGatewayOf(server: ServerContext): MsnGateway | undefined {
  return gateways.get(server);
}

/** How long a request waits for a login that the user's initial presence has yet to start. */
const PRESENCE_GRACE_MS = 2000;

interface LoginWaiter {
  done(session: UserSession | undefined): void;
  extend(): void;
}

export class MsnGateway {
  readonly domain: string;
  readonly server: ServerContext;
  readonly registrations: MsnRegistrationStore;
  readonly box: SecretBox;
  readonly avatars: AvatarCache;
  /** Bare JID → the user's MSN session. */
  readonly sessions = new Map<string, UserSession>();
  /** The users' rosters and vCards: in-process, or over stanzas. */
  readonly users: UserServer;
  /** Files between MSN and the users (files.ts). */
  readonly files: GatewayFiles;
  /** Bare JID → the transport state shown to operators; outlives the session (last error). */
  readonly userStatus = new Map<string, MsnUserStatus>();
  /** Contacts' pictures and names as XEP-0084/0172 PEP (contact-pep.ts). */
  readonly contactPep: ContactPep;

  constructor(
    readonly host: Host,
    users: UserServerFactory,
  ) {
    this.server = host.server;
    this.domain = host.name;
    this.registrations = this.server.store(MsnRegistrationStore);
    this.box = SecretBox.forConfig(this.server.config, this.server.log);
    this.avatars = new AvatarCache(this.server);
    this.users = users(this);
    this.contactPep = new ContactPep(this);
    this.files = new GatewayFiles(this);
    gateways.set(this.server, this);
  }

  /** Sends a stanza from the gateway (or one of its contact JIDs) through the router. */
  send(stanza: Element): void {
    this.server.router.route(stanza, { kind: 'host', name: this.domain });
  }

  contactJid(email: string): string {
    return emailToJid(email, this.domain);
  }

  /** The MSN address a contact JID stands for, or null. */
  emailOf(jid: Jid): string | null {
    if (jid.domain !== this.domain || !jid.local) return null;
    return localToEmail(jid.local);
  }

  /** A user of the server the transport belongs to (its own domain, or the host server's in component mode). */
  isLocalUser(jid: Jid): boolean {
    return jid.domain === this.server.config.domain;
  }

  /** Whether msn.server names an MSN service; until it does, the transport says so instead of logging in. */
  get configured(): boolean {
    return this.server.config.msn.server !== '';
  }

  /** Whether this user may use the transport at all (local, or remote when allowed). */
  mayRegister(jid: Jid): boolean {
    return this.isLocalUser(jid) || this.server.config.msn.allowRemoteUsers;
  }

  /**
   * Options for an MSN login with the configured network endpoints. At
   * debug, every MSNP command line in and out is logged for `user` (the
   * library has already replaced tickets, tokens and cookies).
   */
  msnOptions(email: string, password: string, user?: string): MsnSessionOptions {
    const msn = this.server.config.msn;
    const log = this.host.log;
    return {
      email,
      password,
      server: msn.server,
      nexusUrl: msn.nexus,
      loginUrl: msn.loginUrl || undefined,
      protocols: msn.protocols.map((v) => `MSNP${v}`),
      servicesUrl: msn.servicesUrl || undefined,
      // One endpoint per user and address, the same across restarts (MSNP16+):
      // a new login then replaces a stale one instead of adding a ghost endpoint.
      machineGuid: user === undefined ? undefined : stableGuid(`${this.domain}\n${user}\n${email.toLowerCase()}`),
      trace:
        user !== undefined && log.enabled('debug')
          ? (e) => log.debug(`msnp ${e.direction === 'in' ? '<<' : '>>'} ${e.server}`, { user, line: e.line })
          : undefined,
    };
  }

  async registration(bare: string): Promise<(MsnRegistration & { password: string }) | undefined> {
    const reg = await this.registrations.get(bare);
    if (!reg) return undefined;
    return { ...reg, password: this.box.open(reg.passwordSealed) };
  }

  /** Counts for the status page: nothing private. */
  state(): { domain: string; sessions: number; online: number } {
    let online = 0;
    for (const s of this.sessions.values()) if (s.online) online++;
    return { domain: this.domain, sessions: this.sessions.size, online };
  }

  private readonly onlineWaiters = new Map<string, Set<LoginWaiter>>();

  /**
   * The user's session once it is logged in to MSN: at once when it is,
   * after the login in progress (or about to start: the user is online and
   * registered, and the presence that logs in is on its way) otherwise.
   * Undefined when there is nothing to wait for, the login fails, or
   * `msn.loginWait` passes first.
   *
   * A request may also overtake the user's initial presence on its way here
   * (a client sends presence and a request together; the presence reaches
   * the transport after a roster read). For a registered user with a bound
   * resource but no presence yet, the wait is short (PRESENCE_GRACE_MS)
   * unless a login starts meanwhile (loginStarted), then up to loginWait.
   */
  async whenOnline(user: Jid): Promise<UserSession | undefined> {
    const bare = user.bare;
    const s = this.sessions.get(bare);
    if (s?.online) return s;
    let wait = this.server.config.msn.loginWait * 1000;
    if (!s) {
      if (!this.isLocalUser(user) || !this.server.sessions.has(bare)) return undefined;
      if (!(await this.registrations.get(bare))) return undefined;
      const now = this.sessions.get(bare);
      if (now?.online) return now;
      if (!now && this.server.sessions.available(bare).length === 0) wait = Math.min(wait, PRESENCE_GRACE_MS);
    }
    return new Promise((resolve) => {
      let waiters = this.onlineWaiters.get(bare);
      if (!waiters) {
        waiters = new Set();
        this.onlineWaiters.set(bare, waiters);
      }
      const set = waiters;
      let timer = setTimeout(() => waiter.done(undefined), wait);
      const waiter: LoginWaiter = {
        done: (session) => {
          clearTimeout(timer);
          set.delete(waiter);
          if (set.size === 0 && this.onlineWaiters.get(bare) === set) this.onlineWaiters.delete(bare);
          resolve(session);
        },
        extend: () => {
          clearTimeout(timer);
          timer = setTimeout(() => waiter.done(undefined), this.server.config.msn.loginWait * 1000);
        },
      };
      set.add(waiter);
    });
  }

  /** A login began: requests waiting for the user's presence now wait for the login (up to loginWait). */
  loginStarted(bare: string): void {
    for (const w of this.onlineWaiters.get(bare) ?? []) w.extend();
  }

  /** A session logged in (or closed: `session` undefined): wakes whoever waits for it. */
  settle(bare: string, session: UserSession | undefined): void {
    for (const w of [...(this.onlineWaiters.get(bare) ?? [])]) w.done(session);
  }

  /** Per-user transport state for operators (see status.ts). */
  userStates(): MsnUserStatus[] {
    return [...this.userStatus.values()].map((u) => ({ ...u })).sort((a, b) => (a.user < b.user ? -1 : 1));
  }
}

/** A UUID-shaped value derived from `seed` (SHA-1, as name-based UUIDs are). */
function stableGuid(seed: string): string {
  const h = createHash('sha1').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((Number.parseInt(h.slice(16, 18), 16) & 0x3f) | 0x80).toString(16)}${h.slice(18, 20)}-${h.slice(20, 32)}`;
}
