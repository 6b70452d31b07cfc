// MsnSimulator: a self-contained imitation of the (revived) MSN Messenger
// service as MSNP8-MSNP18 clients saw it, for tests. It runs, on 127.0.0.1:
//  - an HTTP server with the Passport nexus (/rdr/pprdr.asp) and login
//    server (/login2.srf), and the SOAP services of MSNP13+ (services.ts:
//    token service, address book, sharing, offline messages),
//  - a dispatch server (answers USR TWN I with XFR NS),
//  - a notification server (login, lists, presence, challenges),
//  - a switchboard server (conversations).
// Accounts, contact lists and groups live in memory and survive restart();
// connections, presence and conversations do not.

import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { type Account, AccountStore, type AddAccountOptions, type ListName } from './accounts.ts';
import { randomChallenge } from './challenge.ts';
import type { LogEntry, ResolvedOptions, SimContext, SimulatorOptions } from './context.ts';
import { PassportAuthority, PassportHttpServer } from './nexus.ts';
import { NotificationRegistry, NotificationSession } from './notification.ts';
import { announce, refreshVisibility } from './presence.ts';
import { WebServices } from './services.ts';
import { SwitchboardServer } from './switchboard.ts';
import { TokenAuthority } from './tokens.ts';
import { LOOPBACK, TcpListener } from './tcp.ts';

export type { LogEntry, SimulatorOptions } from './context.ts';
export type { ListName } from './accounts.ts';

export interface SimulatorEndpoints {
  /** Full URL of the nexus: GET it for the PassportURLs header. */
  nexusUrl: string;
  /** Full URL of login2.srf (the DALogin of the nexus, with http://). */
  loginUrl: string;
  /** Notification server: clients may log in here directly. */
  nsHost: string;
  nsPort: number;
  /** Dispatch server: answers USR TWN I with XFR to the notification server. */
  dispatchHost: string;
  dispatchPort: number;
  /** Switchboard server (clients learn it from XFR SB / RNG). */
  sbHost: string;
  sbPort: number;
  /** Port of the nexus/login HTTP server. */
  httpPort: number;
}

export interface ContactView {
  email: string;
  /** Stored (F=) name. */
  nickname: string;
  guid: string;
  lists: ListName[];
  /** Group names, for contacts on the FL. */
  groups: string[];
}

export interface ListsView {
  FL: string[];
  AL: string[];
  BL: string[];
  RL: string[];
  contacts: ContactView[];
  groups: { guid: string; name: string }[];
  blp: 'AL' | 'BL';
  gtc: 'A' | 'N';
}

export interface PresenceView {
  /** NLN, BSY, ..., HDN, or FLN when logged in but no CHG yet. */
  status: string;
  capabilities: string;
  msnObject: string | null;
  friendlyName: string;
  protocol: number;
}

const DEFAULTS: ResolvedOptions = {
  httpPort: 0,
  notificationPort: 0,
  dispatchPort: 0,
  switchboardPort: 0,
  pingIntervalSeconds: 50,
  challengeAfterLogin: true,
  challengeIntervalMs: 0,
  challengeTimeoutMs: 60_000,
  challengeGenerator: randomChallenge,
  switchboardIdleMs: 5 * 60_000,
  ringTimeoutMs: 60_000,
  ticketLifetimeMs: 60 * 60_000,
  protocols: [18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8],
  offlineMessages: true,
  log: undefined,
};

/**
 * Events: 'log' (LogEntry) for every command in and out, 'login' (email) when
 * a NS login succeeds.
 */
export class MsnSimulator extends EventEmitter {
  readonly options: ResolvedOptions;
  readonly accounts = new AccountStore();
  private readonly passport: PassportAuthority;
  private readonly tokens: TokenAuthority;
  private readonly registry: NotificationRegistry;
  private readonly http: PassportHttpServer;
  private readonly switchboard: SwitchboardServer;
  private readonly nsListener: TcpListener;
  private readonly dsListener: TcpListener;
  private readonly nsSessions = new Set<NotificationSession>();
  private readonly ctx: SimContext;
  private running = false;
  /** Ports actually bound, reused by restart(). */
  private ports = { http: 0, ns: 0, ds: 0, sb: 0 };

  constructor(options: SimulatorOptions = {}) {
    super();
    const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
    this.options = { ...DEFAULTS, ...defined } as ResolvedOptions;
    this.passport = new PassportAuthority(this.options.ticketLifetimeMs);
    this.tokens = new TokenAuthority(this.options.ticketLifetimeMs);
    this.registry = new NotificationRegistry(this.accounts);
    const self = this;
    this.ctx = {
      accounts: this.accounts,
      passport: this.passport,
      tokens: this.tokens,
      options: this.options,
      get switchboard() {
        return self.switchboard;
      },
      log: (entry: LogEntry) => {
        this.options.log?.(entry);
        if (this.listenerCount('log') > 0) this.emit('log', entry);
      },
    };
    this.http = new PassportHttpServer(this.accounts, this.passport, {
      onLogin: (email, ok) =>
        this.ctx.log({ server: 'HTTP', direction: 'info', email, text: `login2.srf ${ok ? 200 : 401}` }),
    });
    this.http.services = new WebServices(this.accounts, this.tokens, this.registry, {
      offlineMessages: this.options.offlineMessages,
      log: (email, text) => this.ctx.log({ server: 'HTTP', direction: 'info', email, text }),
    });
    this.switchboard = new SwitchboardServer(this.ctx, this.registry);
    this.nsListener = new TcpListener((socket) => this.accept(socket, false));
    this.dsListener = new TcpListener((socket) => this.accept(socket, true));
  }

  private accept(socket: Socket, dispatch: boolean): void {
    const session = new NotificationSession(this.ctx, socket, this.registry, dispatch);
    this.nsSessions.add(session);
    socket.once('close', () => this.nsSessions.delete(session));
  }

  /** Starts every listener. Ports given in the options (or from a previous start) are reused. */
  async start(): Promise<SimulatorEndpoints> {
    if (this.running) return this.endpoints();
    const want = {
      http: this.ports.http || this.options.httpPort,
      ns: this.ports.ns || this.options.notificationPort,
      ds: this.ports.ds || this.options.dispatchPort,
      sb: this.ports.sb || this.options.switchboardPort,
    };
    try {
      this.ports.http = await this.http.start(want.http);
      this.ports.ns = await this.nsListener.start(want.ns);
      this.ports.ds = await this.dsListener.start(want.ds);
      this.ports.sb = await this.switchboard.start(want.sb);
    } catch (err) {
      await this.shutdown();
      throw err;
    }
    this.registry.nsAddress = `${LOOPBACK}:${this.ports.ns}`;
    this.registry.dsAddress = `${LOOPBACK}:${this.ports.ds}`;
    this.running = true;
    return this.endpoints();
  }

  endpoints(): SimulatorEndpoints {
    return {
      nexusUrl: this.http.nexusUrl,
      loginUrl: this.http.loginUrl,
      nsHost: LOOPBACK,
      nsPort: this.ports.ns,
      dispatchHost: LOOPBACK,
      dispatchPort: this.ports.ds,
      sbHost: LOOPBACK,
      sbPort: this.ports.sb,
      httpPort: this.ports.http,
    };
  }

  /** Graceful stop: every NS client gets "OUT SSD", then all listeners close. */
  async stop(): Promise<void> {
    // Unregister first so the kicked sessions do not FLN each other on the way out.
    const sessions = this.registry.all();
    this.registry.clear();
    for (const session of sessions) session.kick('SSD');
    await this.shutdown();
  }

  /**
   * Simulates a network/server outage: drops every connection without a
   * word, then listens again on the same ports. Accounts and lists are kept.
   */
  async restart(): Promise<SimulatorEndpoints> {
    await this.shutdown();
    return this.start();
  }

  private async shutdown(): Promise<void> {
    this.running = false;
    await this.switchboard.stop();
    await Promise.all([this.nsListener.stop(), this.dsListener.stop(), this.http.stop()]);
    this.registry.clear();
    this.nsSessions.clear();
  }

  get isRunning(): boolean {
    return this.running;
  }

  // ---- accounts and lists -------------------------------------------------------

  addAccount(email: string, password: string, options: AddAccountOptions = {}): Account {
    return this.accounts.add(email, password, options);
  }

  private mustGet(email: string): Account {
    const account = this.accounts.get(email);
    if (!account) throw new Error(`no such account: ${email}`);
    return account;
  }

  /**
   * Seeds `owner`'s lists with `contact` (FL also fills the contact's RL),
   * as if the owner had sent ADC. Online sessions are not notified, except
   * that presence visibility is re-evaluated.
   */
  addContact(
    owner: string,
    contact: string,
    lists: ListName[] = ['FL', 'AL'],
    options: { nickname?: string; groups?: string[] } = {},
  ): void {
    const account = this.mustGet(owner);
    this.mustGet(contact);
    for (const list of lists) {
      if (list === 'RL') throw new Error('RL follows from the other side adding to FL');
      this.accounts.addToList(account, contact, list, list === 'FL' ? options.nickname : undefined);
    }
    if (options.groups) {
      const entry = this.accounts.entry(account, contact);
      for (const name of options.groups) {
        const group =
          [...account.groups.values()].find((g) => g.name === name) ?? this.accounts.addGroup(account, name);
        entry.groups.add(group.guid);
      }
    }
    const session = this.registry.sessionOf(owner);
    if (session?.receivesPresence) refreshVisibility(this.registry, session);
  }

  /** Convenience: both users have each other on FL and AL. */
  makeFriends(a: string, b: string): void {
    this.addContact(a, b);
    this.addContact(b, a);
  }

  addGroup(owner: string, name: string): string {
    return this.accounts.addGroup(this.mustGet(owner), name).guid;
  }

  setPrivacy(owner: string, blp: 'AL' | 'BL'): void {
    const account = this.mustGet(owner);
    account.blp = blp;
    this.accounts.touchSettings(account);
    const session = this.registry.sessionOf(owner);
    if (session?.receivesPresence) refreshVisibility(this.registry, session);
  }

  /** Changes a friendly name server-side (as another client of the user would). */
  setFriendlyName(email: string, name: string): void {
    const account = this.mustGet(email);
    account.friendlyName = name;
    this.accounts.touchSettings(account);
    const session = this.registry.sessionOf(email);
    if (session?.receivesPresence) announce(this.registry, session);
  }

  getLists(email: string): ListsView {
    const account = this.mustGet(email);
    const contacts: ContactView[] = [...account.contacts.values()].map((c) => ({
      email: c.email,
      nickname: c.nickname,
      guid: c.guid,
      lists: (['FL', 'AL', 'BL', 'RL'] as const).filter((l) => c.lists.has(l)),
      groups: [...c.groups].map((g) => account.groups.get(g)?.name ?? g),
    }));
    const on = (list: ListName) => contacts.filter((c) => c.lists.includes(list)).map((c) => c.email);
    return {
      FL: on('FL'),
      AL: on('AL'),
      BL: on('BL'),
      RL: on('RL'),
      contacts,
      groups: [...account.groups.values()].map((g) => ({ guid: g.guid, name: g.name })),
      blp: account.blp,
      gtc: account.gtc,
    };
  }

  /** Presence of a logged-in user, or null when not connected to the NS. */
  getPresence(email: string): PresenceView | null {
    const session = this.registry.sessionOf(email);
    if (!session) return null;
    return {
      status: session.status,
      capabilities: session.capabilities,
      msnObject: session.msnObject,
      friendlyName: session.account.friendlyName,
      protocol: session.protocol,
    };
  }

  /** Last UUX payload of the user (personal message data), if any. */
  getPersonalData(email: string): string | null {
    return this.mustGet(email).personalData;
  }

  isOnline(email: string): boolean {
    return this.registry.sessionOf(email) !== undefined;
  }

  /** Users currently connected to the notification server. */
  onlineUsers(): string[] {
    return this.registry.all().map((s) => s.email);
  }

  /** Number of open conversations, and who is in them. */
  switchboards(): { id: string; participants: string[]; ringing: string[] }[] {
    return [...this.switchboard.sessions.values()].map((s) => ({
      id: s.id,
      participants: [...s.participants.keys()],
      ringing: [...s.ringing.keys()],
    }));
  }

  // ---- server-initiated actions ---------------------------------------------------

  /** Sends a CHL to the user now. Returns false if the user is not logged in. */
  sendChallenge(email: string): boolean {
    const session = this.registry.sessionOf(email);
    if (!session) return false;
    session.challenge();
    return true;
  }

  /** Disconnects the user with "OUT <reason>" (e.g. OTH, SSD, "RCT 5"). */
  disconnect(email: string, reason = 'SSD'): boolean {
    const session = this.registry.sessionOf(email);
    if (!session) return false;
    session.kick(reason);
    return true;
  }
}
