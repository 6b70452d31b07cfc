/**
 * MsnSession: the public face of the MSN client.
 *
 * It owns the notification server (NS) connection's life — login, keepalive,
 * challenges, reconnects — and delegates each protocol concern to a part
 * sharing one SessionCore: login.ts (VER/CVR/USR), contact-list.ts (lists
 * and groups), presence.ts (own and contacts' presence), switchboards.ts
 * (chats, conversations, transfers). Callers see typed events and
 * promise-returning calls; every call either settles or times out.
 */
import { EventEmitter } from 'node:events';
import { solveChallenge } from './challenge.ts';
import type { MsnCommand } from './command.ts';
import { MsnConnection } from './connection.ts';
import { ContactList } from './contact-list.ts';
import { MsnAuthError, MsnConnectionError, MsnError, MsnProtocolError, MsnTimeoutError } from './errors.ts';
import { authenticate } from './login.ts';
import { DEFAULT_FORMAT, type TextFormat } from './messages.ts';
import type { MsnObject } from './msnobject.ts';
import { Presence } from './presence.ts';
import { parseMime } from './mime.ts';
import { OfflineMessages } from './offline-messages.ts';
import { SessionCore, withDeadline } from './session-core.ts';
import { splitHostPort } from './switchboard.ts';
import { Switchboards } from './switchboards.ts';
import type {
  DisconnectReason,
  ListName,
  MsnContact,
  MsnEndpoint,
  MsnGroup,
  MsnReconnectOptions,
  MsnSessionEvents,
  MsnSessionOptions,
  MsnSessionState,
  MsnStatus,
  MsnTimeouts,
  SettableStatus,
} from './types.ts';

const DEFAULT_TIMEOUTS: MsnTimeouts = {
  connect: 10_000,
  request: 15_000,
  passport: 15_000,
  login: 45_000,
  join: 30_000,
  transfer: 30_000,
  fileTransfer: 300_000,
  switchboardIdle: 300_000,
  ping: 45_000,
  pong: 20_000,
};

const DEFAULT_RECONNECT: MsnReconnectOptions = {
  enabled: true,
  initialDelay: 1000,
  maxDelay: 60_000,
  maxAttempts: Number.POSITIVE_INFINITY,
};

/** MSNC4 (MSN 7.0) | multi-packet messaging (0x20) | GIF ink (0x04). */
export const DEFAULT_CLIENT_ID = 0x40000024;
export const SUPPORTED_PROTOCOLS = [
  'MSNP18',
  'MSNP17',
  'MSNP16',
  'MSNP15',
  'MSNP14',
  'MSNP13',
  'MSNP12',
  'MSNP11',
  'MSNP10',
  'MSNP9',
  'MSNP8',
];

export class MsnSession extends EventEmitter<MsnSessionEvents> {
  readonly email: string;
  private readonly core: SessionCore;
  private readonly lists: ContactList;
  private readonly presence: Presence;
  private readonly sbs: Switchboards;
  private readonly oims: OfflineMessages;
  private readonly reconnectOpts: MsnReconnectOptions;
  private readonly protocols: string[];

  private loginConn: MsnConnection | undefined;
  private outReason: string | undefined;
  /** Bumped by every login attempt and by logout, so a superseded attempt can tell it must stop. */
  private loginAttempt = 0;
  private outRetryMinutes: number | undefined;

  private pingTimer: NodeJS.Timeout | undefined;
  private pongTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconnectAttempt = 0;

  constructor(options: MsnSessionOptions) {
    super();
    this.email = options.email.toLowerCase();
    this.core = new SessionCore(
      this.email,
      options,
      { ...DEFAULT_TIMEOUTS, ...options.timeouts },
      // The generic EventEmitter typing cannot follow K through a spread.
      (name, ...args) => {
        (this.emit as (n: string, ...a: unknown[]) => boolean)(name, ...args);
      },
      () => this.listenerCount('error') > 0,
      () => this.listenerCount('fileOffer') > 0,
    );
    this.reconnectOpts = { ...DEFAULT_RECONNECT, ...options.reconnect };
    this.protocols = options.protocols ?? SUPPORTED_PROTOCOLS;
    this.lists = new ContactList(this.core, (nickname) => {
      this.presence.nickname = nickname;
    });
    this.presence = new Presence(this.core, options.clientId ?? DEFAULT_CLIENT_ID, () => this.lists.syncing);
    this.sbs = new Switchboards(this.core, () => this.presence.avatar);
    this.oims = new OfflineMessages(this.core, () => this.presence.nickname);
  }

  // ---------------------------------------------------------------- state

  /** offline, connecting, online or reconnecting. */
  get state(): MsnSessionState {
    return this.core.state;
  }

  /** True while logged in to the notification server. */
  get connected(): boolean {
    return this.core.state === 'online';
  }

  /** The negotiated protocol ("MSNP11"), empty before the first login. */
  get protocol(): string {
    return this.core.negotiated;
  }

  get status(): SettableStatus {
    return this.presence.status;
  }

  get nickname(): string {
    return this.presence.nickname;
  }

  get personalMessage(): string {
    return this.presence.personalMessage;
  }

  /** Our own display picture descriptor, if one is set. */
  get msnObject(): MsnObject | undefined {
    return this.presence.avatar?.object;
  }

  /** Snapshot of every known contact (any list). */
  get contacts(): MsnContact[] {
    return this.lists.snapshot();
  }

  get groups(): MsnGroup[] {
    return this.lists.groupSnapshot();
  }

  /** A contact's status without copying the whole contact (hot path: every message sent). */
  contactStatus(email: string): MsnStatus | undefined {
    return this.core.contacts.get(email.toLowerCase())?.status;
  }

  getContact(email: string): MsnContact | undefined {
    const c = this.core.contacts.get(email.toLowerCase());
    return c ? structuredClone(c) : undefined;
  }

  /** MSNP16+: the other places our account is signed in from (their machine GUIDs and names). */
  get endpoints(): MsnEndpoint[] {
    return this.presence.endpoints.map((e) => ({ ...e }));
  }

  /** True when offline messages can be sent (MSNP13+ with the tickets they need). */
  get offlineMessagesSupported(): boolean {
    return this.core.state === 'online' && this.oims.supported;
  }

  /** Ids of multi-party conversations currently open. */
  get conversations(): { id: string; participants: string[] }[] {
    return this.sbs.conversations;
  }

  // ---------------------------------------------------------------- login / logout

  /**
   * Logs in and resolves once the contact list is synchronised and the
   * initial status is set. Rejects with MsnAuthError for bad credentials.
   * A failed first login is not retried.
   */
  async login(): Promise<void> {
    const core = this.core;
    if (core.state === 'online') return;
    if (core.state === 'connecting') throw new MsnError(0, 'login already in progress');
    // A pending automatic retry is replaced by this explicit attempt.
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    core.wantOnline = true;
    this.reconnectAttempt = 0;
    try {
      await this.connectOnce();
    } catch (err) {
      core.wantOnline = false;
      core.setState('offline', 'login failed', err as Error);
      throw err;
    }
  }

  /** Signs out (OUT), closes every switchboard, and stops reconnecting. */
  async logout(): Promise<void> {
    const core = this.core;
    const wasConnected = core.state !== 'offline';
    core.wantOnline = false;
    this.loginAttempt++;
    core.setState('offline', 'logout');
    this.clearTimers();
    this.sbs.p2p.shutdown();
    const closing: Promise<void>[] = [this.sbs.closeAll()];
    const conn = core.ns ?? this.loginConn;
    core.ns = undefined;
    this.loginConn?.destroy();
    this.loginConn = undefined;
    if (conn?.isOpen) {
      closing.push(new Promise((resolve) => conn.once('close', () => resolve())));
      conn.sendBare('OUT');
      conn.close();
    }
    await withDeadline(Promise.all(closing), 2000).catch(() => undefined);
    this.presence.markAllOffline(false);
    if (wasConnected) this.emit('disconnected', { reason: 'logout', willReconnect: false });
  }

  private async connectOnce(): Promise<void> {
    const core = this.core;
    if (core.state !== 'reconnecting') core.setState('connecting', 'login');
    const attempt = ++this.loginAttempt;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.loginAttempt++; // makes doLogin give up at its next step
        this.loginConn?.destroy();
        reject(new MsnTimeoutError('login'));
      }, core.timeouts.login);
    });
    try {
      await Promise.race([this.doLogin(attempt), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async doLogin(attempt: number): Promise<void> {
    const core = this.core;
    const superseded = () => attempt !== this.loginAttempt || !core.wantOnline;
    let [host, port] = splitHostPort(core.opts.server);
    for (let hop = 0; hop < 5; hop++) {
      const conn = await MsnConnection.connect(host, port, {
        connectTimeout: core.timeouts.connect,
        requestTimeout: core.timeouts.request,
        trace: core.opts.trace,
      });
      if (superseded()) {
        conn.destroy();
        throw new MsnConnectionError('login abandoned');
      }
      this.loginConn = conn;
      this.oims.reset();
      conn.on('command', (cmd) => this.onNsCommand(conn, cmd));
      try {
        const step = await authenticate(core, conn, this.protocols);
        if ('redirect' in step) {
          conn.close();
          [host, port] = splitHostPort(step.redirect);
          continue;
        }
        if (step.nickname !== undefined) this.presence.nickname = step.nickname;
        if (superseded()) throw new MsnConnectionError('login abandoned');
        await this.lists.synchronise(conn);
        await this.presence.announce(conn);
        if (superseded()) throw new MsnConnectionError('login abandoned');
      } catch (err) {
        conn.destroy();
        if (this.loginConn === conn) this.loginConn = undefined;
        throw err;
      }
      this.loginConn = undefined;
      core.ns = conn;
      conn.on('close', (err) => this.onNsClose(conn, err));
      if (!conn.isOpen) {
        // Closed between the last reply and now: treat like any drop.
        this.onNsClose(conn, undefined);
        return;
      }
      core.setState('online', core.negotiated);
      this.reconnectAttempt = 0;
      this.schedulePing(core.timeouts.ping);
      this.sbs.startIdleSweep();
      this.emit('connected', { email: this.email, nickname: this.presence.nickname, protocol: core.negotiated });
      this.oims.loggedIn();
      return;
    }
    throw new MsnProtocolError('too many XFR NS redirects');
  }

  // ---------------------------------------------------------------- NS events

  private onNsCommand(conn: MsnConnection, cmd: MsnCommand): void {
    if (this.lists.onCommand(cmd) || this.presence.onCommand(cmd)) return;
    const a = cmd.args;
    switch (cmd.name) {
      case 'CHL': {
        const { productId, response } = solveChallenge(this.core.negotiated || 'MSNP11', a[1] ?? '');
        conn.send('QRY', [productId], response);
        break;
      }
      case 'QNG': {
        clearTimeout(this.pongTimer);
        this.pongTimer = undefined;
        const secs = Number(a[0]);
        const ping = this.core.timeouts.ping;
        const next = Number.isFinite(secs) && secs > 0 ? Math.min(secs * 1000, ping) : ping;
        if (conn === this.core.ns) this.schedulePing(next);
        break;
      }
      case 'RNG':
        void this.sbs.onRing(a);
        break;
      case 'MSG':
        // From "Hotmail": the profile, and (MSNP13+) the offline messages waiting or just arrived.
        if (cmd.payload) this.oims.onHotmailMessage(parseMime(cmd.payload));
        break;
      case 'OUT':
        this.outReason = a[0] ?? 'unknown';
        if (a[0] === 'RCT' && a[1] !== undefined) this.outRetryMinutes = Number(a[1]);
        break;
      default:
        break;
    }
  }

  private onNsClose(conn: MsnConnection, err: Error | undefined): void {
    const core = this.core;
    if (conn !== core.ns) return;
    core.ns = undefined;
    this.clearTimers();
    const out = this.outReason;
    this.outReason = undefined;
    const retryMinutes = this.outRetryMinutes;
    this.outRetryMinutes = undefined;
    if (!core.wantOnline) return;
    this.presence.markAllOffline(true);
    if (out === 'OTH') {
      core.wantOnline = false;
      core.setState('offline', 'signed in elsewhere (OUT OTH)');
      void this.sbs.closeAll();
      this.emit('disconnected', { reason: 'otherLogin', willReconnect: false });
      return;
    }
    const reason: DisconnectReason = out === 'SSD' ? 'serverShutdown' : out ? 'protocol' : 'network';
    const willReconnect = this.reconnectOpts.enabled;
    core.setState(willReconnect ? 'reconnecting' : 'offline', reason, err);
    if (!willReconnect) {
      core.wantOnline = false;
      void this.sbs.closeAll();
    }
    this.emit('disconnected', { reason, willReconnect, error: err });
    if (willReconnect)
      this.scheduleReconnect(retryMinutes !== undefined && retryMinutes > 0 ? retryMinutes * 60_000 : undefined);
  }

  private scheduleReconnect(forcedDelay?: number): void {
    const core = this.core;
    this.reconnectAttempt++;
    if (this.reconnectAttempt > this.reconnectOpts.maxAttempts) {
      core.wantOnline = false;
      core.setState('offline', 'gave up reconnecting');
      void this.sbs.closeAll();
      core.emitError(new MsnConnectionError(`gave up reconnecting after ${this.reconnectOpts.maxAttempts} attempts`));
      return;
    }
    const delay =
      forcedDelay ??
      Math.min(this.reconnectOpts.maxDelay, this.reconnectOpts.initialDelay * 2 ** (this.reconnectAttempt - 1));
    this.emit('reconnecting', { attempt: this.reconnectAttempt, delay });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (!core.wantOnline) return;
      this.connectOnce().catch((err: Error) => {
        if (!core.wantOnline) return;
        if (err instanceof MsnAuthError) {
          core.wantOnline = false;
          core.setState('offline', 'authentication failed', err);
          void this.sbs.closeAll();
          this.emit('disconnected', { reason: 'authFailed', willReconnect: false, error: err });
          return;
        }
        core.setState('reconnecting', 'login failed', err);
        this.scheduleReconnect();
      });
    }, delay);
  }

  private schedulePing(interval: number): void {
    clearTimeout(this.pingTimer);
    this.pingTimer = setTimeout(() => {
      const conn = this.core.ns;
      if (!conn) return;
      conn.sendBare('PNG');
      clearTimeout(this.pongTimer);
      this.pongTimer = setTimeout(() => conn.destroy(new MsnTimeoutError('QNG (keepalive)')), this.core.timeouts.pong);
      this.pongTimer.unref();
    }, interval);
    this.pingTimer.unref();
  }

  private clearTimers(): void {
    clearTimeout(this.pingTimer);
    clearTimeout(this.pongTimer);
    clearTimeout(this.reconnectTimer);
    this.sbs.stopIdleSweep();
    this.pingTimer = this.pongTimer = this.reconnectTimer = undefined;
  }

  // ---------------------------------------------------------------- presence calls

  /** Changes our status (CHG). HDN appears offline. */
  setStatus(status: SettableStatus): Promise<void> {
    return this.presence.setStatus(status);
  }

  /** Sets the personal message (UUX, MSNP11). Kept and re-sent after reconnects. */
  setPersonalMessage(text: string): Promise<void> {
    return this.presence.setPersonalMessage(text);
  }

  /** Changes our friendly name (PRP MFN). */
  setNickname(name: string): Promise<void> {
    return this.presence.setNickname(name);
  }

  /**
   * Sets our display picture (PNG bytes) or clears it with null; peers fetch
   * it over MSNSLP, which this session answers.
   */
  setAvatar(png: Buffer | null): Promise<MsnObject | undefined> {
    return this.presence.setAvatar(png);
  }

  // ---------------------------------------------------------------- list calls

  /**
   * Adds a contact to a list (default FL). Adding to FL also allows them (AL)
   * unless they are blocked, as the official client does.
   */
  addContact(email: string, list: ListName = 'FL'): Promise<MsnContact> {
    return this.lists.addContact(email, list);
  }

  /** Removes a contact from a list (default FL). */
  removeContact(email: string, list: ListName = 'FL'): Promise<void> {
    return this.lists.removeContact(email, list);
  }

  /** Blocks a contact: off the allow list, onto the block list. */
  block(email: string): Promise<void> {
    return this.lists.block(email);
  }

  /** Unblocks a contact: off the block list, onto the allow list. */
  unblock(email: string): Promise<void> {
    return this.lists.unblock(email);
  }

  /** Puts a contact on the allow list (e.g. to accept an addedBy request). */
  allow(email: string): Promise<void> {
    return this.lists.allow(email);
  }

  addGroup(name: string): Promise<MsnGroup> {
    return this.lists.addGroup(name);
  }

  removeGroup(id: string): Promise<void> {
    return this.lists.removeGroup(id);
  }

  renameGroup(id: string, name: string): Promise<void> {
    return this.lists.renameGroup(id, name);
  }

  /** Puts a forward-list contact into group `to` and, if given, out of group `from`. */
  moveContact(email: string, to: string | null, from?: string | null): Promise<void> {
    return this.lists.moveContact(email, to, from);
  }

  // ---------------------------------------------------------------- chat calls

  /**
   * Sends a text message; long texts are split into several MSGs. Resolves
   * once the server ACKed every part; rejects with MsnError(217) when the
   * contact is offline, MsnError(0) on NAK, MsnTimeoutError if they never join.
   */
  sendMessage(to: string, text: string, format: TextFormat = DEFAULT_FORMAT): Promise<void> {
    return this.sbs.sendMessage(to, text, format);
  }

  /** Sends a typing notification (unacknowledged). */
  sendTyping(to: string): Promise<void> {
    return this.sbs.sendTyping(to);
  }

  /**
   * Leaves an offline message (OIM) for a contact who is offline (MSNP13+).
   * Rejects with MsnError(502) on older protocols, or the service's refusal.
   */
  sendOfflineMessage(to: string, text: string): Promise<void> {
    return this.oims.send(to, text);
  }

  /** Sends a nudge (datacast ID 1). */
  sendNudge(to: string): Promise<void> {
    return this.sbs.sendNudge(to);
  }

  /**
   * Offers a file to a contact over MSNP2P through the switchboard. Resolves
   * 'accepted' once the contact's client acknowledged every byte, 'declined'
   * if it refused; rejects on errors and after `timeouts.fileTransfer`.
   */
  sendFile(to: string, name: string, data: Buffer): Promise<'accepted' | 'declined'> {
    return this.sbs.sendFile(to, name, data);
  }

  /**
   * Downloads a contact's current display picture over MSNSLP and returns
   * the bytes, verified against the SHA1D of their MSNObject.
   */
  fetchAvatar(email: string): Promise<Buffer> {
    return this.sbs.fetchAvatar(email);
  }

  // ---------------------------------------------------------------- conversations

  /**
   * Starts a multi-party conversation with the given contacts and resolves
   * with its id once everyone reachable has joined. Rejects if nobody could.
   */
  startConversation(emails: string[]): Promise<string> {
    return this.sbs.startConversation(emails);
  }

  /** Invites one more contact; resolves when they have joined. */
  inviteToConversation(id: string, email: string): Promise<void> {
    return this.sbs.inviteToConversation(id, email);
  }

  sendToConversation(id: string, text: string, format: TextFormat = DEFAULT_FORMAT): Promise<void> {
    return this.sbs.sendToConversation(id, text, format);
  }

  sendTypingToConversation(id: string): Promise<void> {
    return this.sbs.sendTypingToConversation(id);
  }

  /** Leaves a conversation (OUT on its switchboard). */
  leaveConversation(id: string): Promise<void> {
    return this.sbs.leaveConversation(id);
  }
}
