/**
 * MsnSession: the public face of the MSN client.
 *
 * It owns the notification server (NS) connection — login, contact list,
 * presence, challenges, keepalive, reconnects — and the switchboards used for
 * chats, group conversations and display-picture transfers. Callers see typed
 * events and promise-returning calls; every call either settles or times out.
 */
import { EventEmitter } from 'node:events';
import { solveChallenge } from './challenge.ts';
import type { MsnCommand } from './command.ts';
import { MsnConnection } from './connection.ts';
import { MsnAuthError, MsnConnectionError, MsnError, MsnProtocolError, MsnTimeoutError } from './errors.ts';
import {
  buildDatacast,
  buildTextMessage,
  buildTypingMessage,
  classifyMessage,
  DEFAULT_FORMAT,
  splitText,
  type TextFormat,
} from './messages.ts';
import type { MimeMessage } from './mime.ts';
import { createMsnObject, type MsnObject, parseMsnObject, serializeMsnObject } from './msnobject.ts';
import { type OwnAvatar, P2PManager } from './p2p-transfer.ts';
import { passportLogin } from './passport.ts';
import { buildPsmPayload, parsePsmPayload } from './psm.ts';
import { Switchboard, splitHostPort } from './switchboard.ts';
import {
  type DisconnectReason,
  LIST_BITS,
  type ListName,
  listsFromBits,
  type MsnContact,
  type MsnGroup,
  type MsnReconnectOptions,
  type MsnSessionEvents,
  type MsnSessionOptions,
  type MsnStatus,
  type MsnTimeouts,
  SETTABLE_STATUSES,
  type SettableStatus,
} from './types.ts';

const DEFAULT_TIMEOUTS: MsnTimeouts = {
  connect: 10_000,
  request: 15_000,
  passport: 15_000,
  login: 45_000,
  join: 30_000,
  transfer: 30_000,
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
export const SUPPORTED_PROTOCOLS = ['MSNP11', 'MSNP10', 'MSNP9', 'MSNP8'];

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function decodeText(s: string | undefined, fallback = ''): string {
  if (s === undefined) return fallback;
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** MSN URL-encodes names on the wire; spaces must be %20, never '+'. */
function encodeText(s: string): string {
  return encodeURIComponent(s);
}

function versionNumber(protocol: string): number {
  return Number(protocol.replace(/^MSNP/i, '')) || 0;
}

type State = 'offline' | 'connecting' | 'online' | 'reconnecting';

interface SyncState {
  contacts: number;
  groups: number;
  expectContacts?: number;
  expectGroups?: number;
  done?: () => void;
}

export class MsnSession extends EventEmitter<MsnSessionEvents> {
  readonly email: string;
  private readonly opts: MsnSessionOptions;
  private readonly timeouts: MsnTimeouts;
  private readonly reconnectOpts: MsnReconnectOptions;
  private readonly clientId: number;
  private readonly protocols: string[];

  private ns: MsnConnection | undefined;
  private loginConn: MsnConnection | undefined;
  private negotiated = '';
  private state: State = 'offline';
  /** True from login() until logout() or a fatal disconnect: drives reconnects. */
  private wantOnline = false;
  private outReason: string | undefined;
  /** Bumped by every login attempt and by logout, so a superseded attempt can tell it must stop. */
  private loginAttempt = 0;
  private outRetryMinutes: number | undefined;

  private readonly contactMap = new Map<string, MsnContact>();
  private readonly groupMap = new Map<string, MsnGroup>();
  private myStatus: SettableStatus;
  private myNickname: string;
  /** Nickname the user asked for, re-applied after a reconnect. */
  private wantedNickname: string | undefined;
  private myPsm = '';
  private avatar: OwnAvatar | undefined;
  private privacy: { blp: string; gtc: string } = { blp: 'AL', gtc: 'A' };

  private sync: SyncState | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private pongTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconnectAttempt = 0;
  private idleTimer: NodeJS.Timeout | undefined;

  private readonly p2p: P2PManager;
  private readonly switchboards = new Set<Switchboard>();
  /** Open one-to-one switchboard per contact. */
  private readonly chats = new Map<string, Switchboard>();
  /** One-to-one switchboards being set up, so concurrent sends share one. */
  private readonly opening = new Map<string, Promise<Switchboard>>();
  /** Switchboards whose USR/ANS has completed (conversation events start then). */
  private readonly ready = new WeakSet<Switchboard>();

  constructor(options: MsnSessionOptions) {
    super();
    this.opts = options;
    this.email = options.email.toLowerCase();
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    this.reconnectOpts = { ...DEFAULT_RECONNECT, ...options.reconnect };
    this.clientId = options.clientId ?? DEFAULT_CLIENT_ID;
    this.protocols = options.protocols ?? SUPPORTED_PROTOCOLS;
    this.myStatus = options.initialStatus ?? 'NLN';
    this.myNickname = this.email;
    this.p2p = new P2PManager({
      myEmail: this.email,
      getAvatar: () => this.avatar,
      timeout: this.timeouts.transfer,
    });
  }

  // ---------------------------------------------------------------- state

  /** True while logged in to the notification server. */
  get connected(): boolean {
    return this.state === 'online';
  }

  /** The negotiated protocol ("MSNP11"), empty before the first login. */
  get protocol(): string {
    return this.negotiated;
  }

  get status(): SettableStatus {
    return this.myStatus;
  }

  get nickname(): string {
    return this.myNickname;
  }

  get personalMessage(): string {
    return this.myPsm;
  }

  /** Our own display picture descriptor, if one is set. */
  get msnObject(): MsnObject | undefined {
    return this.avatar?.object;
  }

  /** Snapshot of every known contact (any list). */
  get contacts(): MsnContact[] {
    return [...this.contactMap.values()].map((c) => structuredClone(c));
  }

  get groups(): MsnGroup[] {
    return [...this.groupMap.values()].map((g) => ({ ...g }));
  }

  getContact(email: string): MsnContact | undefined {
    const c = this.contactMap.get(email.toLowerCase());
    return c ? structuredClone(c) : undefined;
  }

  /** Ids of multi-party conversations currently open. */
  get conversations(): { id: string; participants: string[] }[] {
    return [...this.switchboards]
      .filter((sb) => sb.multiParty && !sb.closed)
      .map((sb) => ({ id: sb.id, participants: [...sb.participants.keys()] }));
  }

  // ---------------------------------------------------------------- login / logout

  /**
   * Logs in and resolves once the contact list is synchronised and the
   * initial status is set. Rejects with MsnAuthError for bad credentials.
   * A failed first login is not retried.
   */
  async login(): Promise<void> {
    if (this.state === 'online') return;
    if (this.state === 'connecting') throw new MsnError(0, 'login already in progress');
    // A pending automatic retry is replaced by this explicit attempt.
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.wantOnline = true;
    this.reconnectAttempt = 0;
    try {
      await this.connectOnce();
    } catch (err) {
      this.wantOnline = false;
      this.state = 'offline';
      throw err;
    }
  }

  /** Signs out (OUT), closes every switchboard, and stops reconnecting. */
  async logout(): Promise<void> {
    const wasConnected = this.state !== 'offline';
    this.wantOnline = false;
    this.loginAttempt++;
    this.state = 'offline';
    this.clearTimers();
    this.p2p.shutdown();
    const closing: Promise<void>[] = [];
    for (const sb of this.switchboards) {
      closing.push(sb.whenClosed());
      sb.close();
    }
    const conn = this.ns ?? this.loginConn;
    this.ns = undefined;
    this.loginConn?.destroy();
    this.loginConn = undefined;
    if (conn?.isOpen) {
      closing.push(new Promise((resolve) => conn.once('close', () => resolve())));
      conn.sendBare('OUT');
      conn.close();
    }
    await withDeadline(Promise.all(closing), 2000).catch(() => undefined);
    this.markAllOffline(false);
    if (wasConnected) this.emit('disconnected', { reason: 'logout', willReconnect: false });
  }

  private async connectOnce(): Promise<void> {
    this.state = this.state === 'reconnecting' ? 'reconnecting' : 'connecting';
    const attempt = ++this.loginAttempt;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.loginAttempt++; // makes doLogin give up at its next step
        this.loginConn?.destroy();
        reject(new MsnTimeoutError('login'));
      }, this.timeouts.login);
    });
    try {
      await Promise.race([this.doLogin(attempt), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async doLogin(attempt: number): Promise<void> {
    const superseded = () => attempt !== this.loginAttempt || !this.wantOnline;
    let [host, port] = splitHostPort(this.opts.server);
    for (let hop = 0; hop < 5; hop++) {
      const conn = await MsnConnection.connect(host, port, {
        connectTimeout: this.timeouts.connect,
        requestTimeout: this.timeouts.request,
      });
      if (superseded()) {
        conn.destroy();
        throw new MsnConnectionError('login abandoned');
      }
      this.loginConn = conn;
      conn.on('command', (cmd) => this.onNsCommand(conn, cmd));
      try {
        const redirect = await this.authenticate(conn);
        if (redirect) {
          conn.close();
          [host, port] = splitHostPort(redirect);
          continue;
        }
        if (superseded()) throw new MsnConnectionError('login abandoned');
        await this.synchronise(conn);
        await this.announce(conn);
        if (superseded()) throw new MsnConnectionError('login abandoned');
      } catch (err) {
        conn.destroy();
        if (this.loginConn === conn) this.loginConn = undefined;
        throw err;
      }
      this.loginConn = undefined;
      this.ns = conn;
      conn.on('close', (err) => this.onNsClose(conn, err));
      if (!conn.isOpen) {
        // Closed between the last reply and now: treat like any drop.
        this.onNsClose(conn, undefined);
        return;
      }
      this.state = 'online';
      this.reconnectAttempt = 0;
      this.schedulePing(this.timeouts.ping);
      this.startIdleSweep();
      this.emit('connected', { email: this.email, nickname: this.myNickname, protocol: this.negotiated });
      return;
    }
    throw new MsnProtocolError('too many XFR NS redirects');
  }

  /** VER / CVR / USR TWN. Returns a redirect address for XFR NS, or undefined once logged in. */
  private async authenticate(conn: MsnConnection): Promise<string | undefined> {
    const ver = await conn.request('VER', [...this.protocols, 'CVR0']);
    const chosen = ver.args.slice(1).find((v) => this.protocols.includes(v));
    if (!chosen)
      throw new MsnProtocolError(`server offered no supported protocol (${ver.args.slice(1).join(' ')})`);
    this.negotiated = chosen;
    await conn.request('CVR', [
      '0x0409',
      'winnt',
      '5.1',
      'i386',
      'MSNMSGR',
      '7.0.0816',
      'msmsgs',
      this.email,
    ]);
    let reply: MsnCommand;
    try {
      reply = await conn.request('USR', ['TWN', 'I', this.email], { accept: ['XFR'] });
    } catch (err) {
      throw asAuthError(err);
    }
    if (reply.name === 'XFR') {
      // XFR trid NS host:port 0 current-server
      if (reply.args[1] !== 'NS' || !reply.args[2])
        throw new MsnProtocolError(`unexpected XFR ${reply.args.join(' ')}`);
      return reply.args[2];
    }
    if (reply.args[1] !== 'TWN' || reply.args[2] !== 'S' || reply.args[3] === undefined) {
      throw new MsnProtocolError(`unexpected USR reply ${reply.args.join(' ')}`);
    }
    const ticket = await passportLogin({
      nexusUrl: this.opts.nexusUrl,
      loginUrl: this.opts.loginUrl,
      email: this.email,
      password: this.opts.password,
      challenge: reply.args[3],
      timeout: this.timeouts.passport,
    });
    let ok: MsnCommand;
    try {
      ok = await conn.request('USR', ['TWN', 'S', ticket]);
    } catch (err) {
      throw asAuthError(err);
    }
    if (ok.args[1] !== 'OK') throw new MsnProtocolError(`unexpected USR reply ${ok.args.join(' ')}`);
    // MSNP8/9 carry the friendly name here; MSNP10+ send it as PRP MFN during SYN.
    if (versionNumber(this.negotiated) < 10 && ok.args[3] !== undefined)
      this.myNickname = decodeText(ok.args[3], this.email);
    return undefined;
  }

  /** SYN: fetch the whole list (we keep no cache, so always ask from version 0). */
  private async synchronise(conn: MsnConnection): Promise<void> {
    this.contactMap.clear();
    this.groupMap.clear();
    const sync: SyncState = { contacts: 0, groups: 0 };
    this.sync = sync;
    try {
      const v10 = versionNumber(this.negotiated) >= 10;
      const reply = await conn.request('SYN', v10 ? ['0', '0'] : ['0']);
      // MSNP10+: SYN trid ts1 ts2 contacts groups; MSNP8/9: SYN trid version contacts groups.
      const nums = reply.args.slice(1);
      const contacts = Number(nums[nums.length - 2]);
      const groups = Number(nums[nums.length - 1]);
      if (nums.length >= 3 && Number.isFinite(contacts) && Number.isFinite(groups)) {
        sync.expectContacts = contacts;
        sync.expectGroups = groups;
        if (sync.contacts < contacts || sync.groups < groups) {
          await withDeadline(
            new Promise<void>((resolve) => {
              sync.done = resolve;
            }),
            this.timeouts.request,
            'contact list (LST/LSG)',
          );
        }
      }
    } finally {
      this.sync = undefined;
    }
    this.emit('contactList', { contacts: this.contacts, groups: this.groups });
  }

  /** Sets the initial status (plus PSM and nickname wanted from before a reconnect). */
  private async announce(conn: MsnConnection): Promise<void> {
    const chg = await conn.request('CHG', this.chgArgs(this.myStatus));
    this.myStatus = (chg.args[1] as SettableStatus) ?? this.myStatus;
    if (this.wantedNickname !== undefined && this.wantedNickname !== this.myNickname) {
      const prp = await conn.request('PRP', ['MFN', encodeText(this.wantedNickname)]);
      this.myNickname = decodeText(prp.args[2], this.wantedNickname);
    }
    if (versionNumber(this.negotiated) >= 11 && this.myPsm !== '') {
      await conn.request('UUX', [], { payload: buildPsmPayload(this.myPsm) });
    }
  }

  private chgArgs(status: SettableStatus): string[] {
    const args = [status, String(this.clientId)];
    if (this.avatar && versionNumber(this.negotiated) >= 9)
      args.push(encodeText(serializeMsnObject(this.avatar.object)));
    return args;
  }

  // ---------------------------------------------------------------- NS events

  private onNsCommand(conn: MsnConnection, cmd: MsnCommand): void {
    const a = cmd.args;
    switch (cmd.name) {
      case 'CHL': {
        const { productId, response } = solveChallenge(this.negotiated || 'MSNP11', a[1] ?? '');
        conn.send('QRY', [productId], response);
        break;
      }
      case 'QNG': {
        clearTimeout(this.pongTimer);
        this.pongTimer = undefined;
        const secs = Number(a[0]);
        const next =
          Number.isFinite(secs) && secs > 0 ? Math.min(secs * 1000, this.timeouts.ping) : this.timeouts.ping;
        if (conn === this.ns) this.schedulePing(next);
        break;
      }
      case 'GTC':
        this.privacy.gtc = a[a.length - 1] ?? this.privacy.gtc;
        break;
      case 'BLP':
        this.privacy.blp = a[a.length - 1] ?? this.privacy.blp;
        break;
      case 'PRP':
        this.onPrp(a);
        break;
      case 'LSG':
        this.onLsg(a);
        break;
      case 'LST':
        this.onLst(a);
        break;
      case 'ILN':
        // ILN trid status email nick [clientid [msnobj]]
        this.onPresence(a[1] as MsnStatus, a[2], a[3], a[4], a[5], true);
        break;
      case 'NLN':
        // NLN status email nick [clientid [msnobj]]
        this.onPresence(a[0] as MsnStatus, a[1], a[2], a[3], a[4], false);
        break;
      case 'FLN':
        this.onPresence('FLN', a[0], undefined, undefined, undefined, false);
        break;
      case 'UBX':
        this.onUbx(a[0], cmd.payload);
        break;
      case 'ADC':
      case 'ADD':
        this.onAsyncAdd(cmd);
        break;
      case 'REM':
        this.onAsyncRemove(a);
        break;
      case 'RNG':
        void this.onRing(a);
        break;
      case 'OUT':
        this.outReason = a[0] ?? 'unknown';
        if (a[0] === 'RCT' && a[1] !== undefined) this.outRetryMinutes = Number(a[1]);
        break;
      default:
        break;
    }
  }

  private onPrp(a: string[]): void {
    // During SYN: PRP MFN name. Unsolicited change: PRP MFN name (no TrID) or PRP trid MFN name.
    const i = a[0] === 'MFN' ? 0 : a[1] === 'MFN' ? 1 : -1;
    if (i < 0 || a[i + 1] === undefined) return;
    const nick = decodeText(a[i + 1]);
    const changed = nick !== this.myNickname;
    this.myNickname = nick;
    if (changed && !this.sync) this.emit('nickname', { email: this.email, nickname: nick });
  }

  private onLsg(a: string[]): void {
    // MSNP10+: LSG name id ; MSNP8/9: LSG id name 0
    const v10 = versionNumber(this.negotiated) >= 10;
    const id = v10 ? a[1] : a[0];
    const name = v10 ? a[0] : a[1];
    if (id !== undefined) this.groupMap.set(id, { id, name: decodeText(name) });
    this.bumpSync('groups');
  }

  private onLst(a: string[]): void {
    let email: string | undefined;
    let nick: string | undefined;
    let guid: string | undefined;
    let rest: string[];
    if (a[0]?.startsWith('N=')) {
      // MSNP10+: LST N=email [F=nick] [C=guid] lists [groups]
      rest = [];
      for (const t of a) {
        if (t.startsWith('N=')) email = t.slice(2);
        else if (t.startsWith('F=')) nick = t.slice(2);
        else if (t.startsWith('C=')) guid = t.slice(2);
        else rest.push(t);
      }
    } else {
      // MSNP8/9: LST email nick lists [groups]
      email = a[0];
      nick = a[1];
      rest = a.slice(2);
    }
    if (email) {
      const c = this.ensureContact(email);
      if (nick !== undefined) c.nickname = decodeText(nick, c.email);
      if (guid !== undefined) c.guid = guid;
      c.lists = listsFromBits(Number(rest[0]) || 0);
      c.groups = rest[1] ? rest[1].split(',').filter((g) => g.length > 0) : [];
    }
    this.bumpSync('contacts');
  }

  private bumpSync(kind: 'contacts' | 'groups'): void {
    const s = this.sync;
    if (!s) return;
    s[kind]++;
    if (
      s.expectContacts !== undefined &&
      s.expectGroups !== undefined &&
      s.contacts >= s.expectContacts &&
      s.groups >= s.expectGroups
    ) {
      s.done?.();
    }
  }

  private onPresence(
    status: MsnStatus,
    email: string | undefined,
    nickRaw: string | undefined,
    clientIdRaw: string | undefined,
    msnObjRaw: string | undefined,
    initial: boolean,
  ): void {
    if (!email) return;
    const c = this.ensureContact(email);
    const prevNick = c.nickname;
    const prevSha = c.msnObject?.sha1d;
    c.status = status;
    if (nickRaw !== undefined) c.nickname = decodeText(nickRaw, c.email);
    if (clientIdRaw !== undefined) c.clientId = Number(clientIdRaw) || 0;
    if (status === 'FLN') c.clientId = 0;
    else if (versionNumber(this.negotiated) >= 9) c.msnObject = parseMsnObject(msnObjRaw);
    this.emit('presence', {
      email: c.email,
      status,
      nickname: c.nickname,
      clientId: c.clientId,
      msnObject: c.msnObject,
      initial,
    });
    if (c.nickname !== prevNick) this.emit('nickname', { email: c.email, nickname: c.nickname });
    if (status !== 'FLN' && c.msnObject?.sha1d !== prevSha)
      this.emit('avatar', { email: c.email, msnObject: c.msnObject });
  }

  private onUbx(email: string | undefined, payload: Buffer | undefined): void {
    if (!email) return;
    const c = this.ensureContact(email);
    const { psm, currentMedia } = parsePsmPayload(payload?.toString('utf8') ?? '');
    c.personalMessage = psm;
    c.currentMedia = currentMedia;
    this.emit('personalMessage', { email: c.email, text: psm, currentMedia });
  }

  /** ADC 0 RL N=email F=nick (someone added us) and other server-initiated additions. */
  private onAsyncAdd(cmd: MsnCommand): void {
    const a = cmd.args;
    const list = a[1] as ListName;
    if (!(list in LIST_BITS)) return;
    let email: string | undefined;
    let nick: string | undefined;
    if (cmd.name === 'ADC') {
      email = a.find((t) => t.startsWith('N='))?.slice(2);
      nick = a.find((t) => t.startsWith('F='))?.slice(2);
    } else {
      // ADD 0 RL version email nick
      email = a[3];
      nick = a[4];
    }
    if (!email) return;
    const c = this.ensureContact(email);
    if (!c.lists.includes(list)) c.lists.push(list);
    const nickname = decodeText(nick, c.nickname);
    if (list === 'RL') {
      if (c.nickname === c.email) c.nickname = nickname;
      this.emit('addedBy', { email: c.email, nickname });
    }
    this.emit('contactAdded', { email: c.email, list, nickname });
  }

  private onAsyncRemove(a: string[]): void {
    // REM 0 RL email (MSNP10+: REM 0 RL N=email on some servers)
    const list = a[1] as ListName;
    if (!(list in LIST_BITS) || !a[2]) return;
    const id = a[2].replace(/^N=/, '');
    const c =
      this.contactMap.get(id.toLowerCase()) ?? [...this.contactMap.values()].find((x) => x.guid === id);
    if (!c) return;
    if (a[3] !== undefined && list === 'FL') {
      c.groups = c.groups.filter((g) => g !== a[3]);
      this.emit('contactRemoved', { email: c.email, list, group: a[3] });
      return;
    }
    c.lists = c.lists.filter((l) => l !== list);
    this.emit('contactRemoved', { email: c.email, list });
  }

  private onNsClose(conn: MsnConnection, err: Error | undefined): void {
    if (conn !== this.ns) return;
    this.ns = undefined;
    this.clearTimers();
    const out = this.outReason;
    this.outReason = undefined;
    const retryMinutes = this.outRetryMinutes;
    this.outRetryMinutes = undefined;
    if (!this.wantOnline) return;
    this.markAllOffline(true);
    if (out === 'OTH') {
      this.wantOnline = false;
      this.state = 'offline';
      this.closeSwitchboards();
      this.emit('disconnected', { reason: 'otherLogin', willReconnect: false });
      return;
    }
    const reason: DisconnectReason = out === 'SSD' ? 'serverShutdown' : out ? 'protocol' : 'network';
    const willReconnect = this.reconnectOpts.enabled;
    this.state = willReconnect ? 'reconnecting' : 'offline';
    if (!willReconnect) {
      this.wantOnline = false;
      this.closeSwitchboards();
    }
    this.emit('disconnected', { reason, willReconnect, error: err });
    if (willReconnect)
      this.scheduleReconnect(
        retryMinutes !== undefined && retryMinutes > 0 ? retryMinutes * 60_000 : undefined,
      );
  }

  private scheduleReconnect(forcedDelay?: number): void {
    this.reconnectAttempt++;
    if (this.reconnectAttempt > this.reconnectOpts.maxAttempts) {
      this.wantOnline = false;
      this.state = 'offline';
      this.closeSwitchboards();
      this.emitError(
        new MsnConnectionError(`gave up reconnecting after ${this.reconnectOpts.maxAttempts} attempts`),
      );
      return;
    }
    const delay =
      forcedDelay ??
      Math.min(
        this.reconnectOpts.maxDelay,
        this.reconnectOpts.initialDelay * 2 ** (this.reconnectAttempt - 1),
      );
    this.emit('reconnecting', { attempt: this.reconnectAttempt, delay });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (!this.wantOnline) return;
      this.connectOnce().catch((err: Error) => {
        if (!this.wantOnline) return;
        if (err instanceof MsnAuthError) {
          this.wantOnline = false;
          this.state = 'offline';
          this.closeSwitchboards();
          this.emit('disconnected', { reason: 'authFailed', willReconnect: false, error: err });
          return;
        }
        this.scheduleReconnect();
      });
    }, delay);
  }

  private schedulePing(interval: number): void {
    clearTimeout(this.pingTimer);
    this.pingTimer = setTimeout(() => {
      const conn = this.ns;
      if (!conn) return;
      conn.sendBare('PNG');
      clearTimeout(this.pongTimer);
      this.pongTimer = setTimeout(
        () => conn.destroy(new MsnTimeoutError('QNG (keepalive)')),
        this.timeouts.pong,
      );
      this.pongTimer.unref();
    }, interval);
    this.pingTimer.unref();
  }

  private startIdleSweep(): void {
    if (this.idleTimer) return;
    const every = Math.max(50, Math.min(30_000, this.timeouts.switchboardIdle / 4));
    this.idleTimer = setInterval(() => {
      const now = Date.now();
      for (const sb of this.switchboards) {
        if (now - sb.lastActivity > this.timeouts.switchboardIdle) sb.close();
      }
    }, every);
    this.idleTimer.unref();
  }

  private clearTimers(): void {
    clearTimeout(this.pingTimer);
    clearTimeout(this.pongTimer);
    clearTimeout(this.reconnectTimer);
    clearInterval(this.idleTimer);
    this.pingTimer = this.pongTimer = this.reconnectTimer = this.idleTimer = undefined;
  }

  private markAllOffline(emit: boolean): void {
    for (const c of this.contactMap.values()) {
      if (c.status === 'FLN') continue;
      c.status = 'FLN';
      c.clientId = 0;
      if (emit) {
        this.emit('presence', {
          email: c.email,
          status: 'FLN',
          nickname: c.nickname,
          clientId: 0,
          msnObject: c.msnObject,
          initial: false,
        });
      }
    }
  }

  private emitError(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  private ensureContact(email: string): MsnContact {
    const key = email.toLowerCase();
    let c = this.contactMap.get(key);
    if (!c) {
      c = {
        email: key,
        nickname: key,
        lists: [],
        groups: [],
        status: 'FLN',
        personalMessage: '',
        currentMedia: '',
        clientId: 0,
      };
      this.contactMap.set(key, c);
    }
    return c;
  }

  private requireOnline(): MsnConnection {
    if (this.state !== 'online' || !this.ns) throw new MsnConnectionError('not connected to MSN');
    return this.ns;
  }

  // ---------------------------------------------------------------- presence calls

  /** Changes our status (CHG). HDN appears offline. */
  async setStatus(status: SettableStatus): Promise<void> {
    if (!SETTABLE_STATUSES.includes(status)) throw new MsnError(201, `invalid status ${status}`, 'CHG');
    this.myStatus = status;
    if (this.state !== 'online') return; // applied at the next (re)connect
    const reply = await this.requireOnline().request('CHG', this.chgArgs(status));
    this.myStatus = (reply.args[1] as SettableStatus) ?? status;
  }

  /** Sets the personal message (UUX, MSNP11). Kept and re-sent after reconnects. */
  async setPersonalMessage(text: string): Promise<void> {
    this.myPsm = text;
    if (this.state !== 'online' || versionNumber(this.negotiated) < 11) return;
    await this.requireOnline().request('UUX', [], { payload: buildPsmPayload(text) });
  }

  /** Changes our friendly name (PRP MFN). */
  async setNickname(name: string): Promise<void> {
    if (name.length === 0) throw new MsnError(209, 'empty nickname', 'PRP');
    this.wantedNickname = name;
    if (this.state !== 'online') return;
    const reply = await this.requireOnline().request('PRP', ['MFN', encodeText(name)]);
    const nick = decodeText(reply.args[2], name);
    this.myNickname = nick;
    this.emit('nickname', { email: this.email, nickname: nick });
  }

  /**
   * Sets our display picture (PNG bytes) or clears it with null; peers fetch
   * it over MSNSLP, which this session answers.
   */
  async setAvatar(png: Buffer | null): Promise<MsnObject | undefined> {
    if (png === null) {
      this.avatar = undefined;
    } else {
      if (png.length < 8 || !png.subarray(0, 8).equals(PNG_SIGNATURE))
        throw new MsnError(201, 'display picture must be a PNG', 'CHG');
      this.avatar = { object: createMsnObject(this.email, png), data: Buffer.from(png) };
    }
    if (this.state === 'online') await this.setStatus(this.myStatus);
    return this.avatar?.object;
  }

  // ---------------------------------------------------------------- list calls

  /**
   * Adds a contact to a list (default FL). Adding to FL also allows them (AL)
   * unless they are blocked, as the official client does.
   */
  async addContact(email: string, list: ListName = 'FL'): Promise<MsnContact> {
    const conn = this.requireOnline();
    const who = email.toLowerCase();
    const v10 = versionNumber(this.negotiated) >= 10;
    let reply: MsnCommand;
    if (v10) {
      reply = await conn.request(
        'ADC',
        list === 'FL' ? [list, `N=${who}`, `F=${encodeText(who)}`] : [list, `N=${who}`],
      );
    } else {
      reply = await conn.request('ADD', [list, who, encodeText(who)]);
    }
    const c = this.ensureContact(who);
    if (!c.lists.includes(list)) c.lists.push(list);
    if (v10) {
      const guid = reply.args.find((t) => t.startsWith('C='))?.slice(2);
      if (guid) c.guid = guid;
      const nick = reply.args.find((t) => t.startsWith('F='))?.slice(2);
      if (nick && c.status === 'FLN') c.nickname = decodeText(nick, who);
    }
    this.emit('contactAdded', { email: who, list, nickname: c.nickname });
    if (list === 'FL' && !c.lists.includes('AL') && !c.lists.includes('BL')) {
      await this.addContact(who, 'AL').catch((err: unknown) => {
        if (!(err instanceof MsnError && err.code === 215)) throw err;
      });
    }
    return structuredClone(this.contactMap.get(who) ?? c);
  }

  /** Removes a contact from a list (default FL). */
  async removeContact(email: string, list: ListName = 'FL'): Promise<void> {
    const conn = this.requireOnline();
    const who = email.toLowerCase();
    const c = this.contactMap.get(who);
    const v10 = versionNumber(this.negotiated) >= 10;
    const id = list === 'FL' && v10 ? (c?.guid ?? who) : who;
    await conn.request('REM', [list, id]);
    if (c) {
      c.lists = c.lists.filter((l) => l !== list);
      if (list === 'FL') c.groups = [];
    }
    this.emit('contactRemoved', { email: who, list });
  }

  /** Blocks a contact: off the allow list, onto the block list. */
  async block(email: string): Promise<void> {
    const c = this.contactMap.get(email.toLowerCase());
    if (c?.lists.includes('AL')) await this.removeContact(email, 'AL');
    if (!c?.lists.includes('BL')) await this.addContact(email, 'BL');
  }

  /** Unblocks a contact: off the block list, onto the allow list. */
  async unblock(email: string): Promise<void> {
    const c = this.contactMap.get(email.toLowerCase());
    if (c?.lists.includes('BL')) await this.removeContact(email, 'BL');
    if (!c?.lists.includes('AL')) await this.addContact(email, 'AL');
  }

  /** Puts a contact on the allow list (e.g. to accept an addedBy request). */
  async allow(email: string): Promise<void> {
    const c = this.contactMap.get(email.toLowerCase());
    if (c?.lists.includes('BL')) await this.removeContact(email, 'BL');
    if (!this.contactMap.get(email.toLowerCase())?.lists.includes('AL')) await this.addContact(email, 'AL');
  }

  async addGroup(name: string): Promise<MsnGroup> {
    const conn = this.requireOnline();
    const v10 = versionNumber(this.negotiated) >= 10;
    const reply = await conn.request('ADG', v10 ? [encodeText(name)] : [encodeText(name), '0']);
    // MSNP10+: ADG trid name id ; MSNP8/9: ADG trid version name id 0
    const id = v10 ? reply.args[2] : reply.args[3];
    if (!id) throw new MsnProtocolError(`ADG reply without a group id: ${reply.args.join(' ')}`);
    const group = { id, name };
    this.groupMap.set(id, group);
    return { ...group };
  }

  async removeGroup(id: string): Promise<void> {
    await this.requireOnline().request('RMG', [id]);
    this.groupMap.delete(id);
    for (const c of this.contactMap.values()) c.groups = c.groups.filter((g) => g !== id);
  }

  async renameGroup(id: string, name: string): Promise<void> {
    const v10 = versionNumber(this.negotiated) >= 10;
    await this.requireOnline().request('REG', v10 ? [id, encodeText(name)] : [id, encodeText(name), '0']);
    const g = this.groupMap.get(id);
    if (g) g.name = name;
  }

  /** Puts a forward-list contact into group `to` and, if given, out of group `from`. */
  async moveContact(email: string, to: string | null, from?: string | null): Promise<void> {
    const conn = this.requireOnline();
    const who = email.toLowerCase();
    const c = this.contactMap.get(who);
    if (!c?.lists.includes('FL')) throw new MsnError(216, `${who} is not on the forward list`, 'ADC');
    const v10 = versionNumber(this.negotiated) >= 10;
    const id = v10 ? (c.guid ?? who) : who;
    if (to) {
      if (v10) await conn.request('ADC', ['FL', `C=${id}`, to]);
      else await conn.request('ADD', ['FL', who, encodeText(c.nickname), to]);
      if (!c.groups.includes(to)) c.groups.push(to);
      this.emit('contactAdded', { email: who, list: 'FL', group: to });
    }
    if (from) {
      await conn.request('REM', ['FL', id, from]);
      c.groups = c.groups.filter((g) => g !== from);
      this.emit('contactRemoved', { email: who, list: 'FL', group: from });
    }
  }

  // ---------------------------------------------------------------- switchboards

  private async openSwitchboard(): Promise<Switchboard> {
    const conn = this.requireOnline();
    const reply = await conn.request('XFR', ['SB']);
    // XFR trid SB host:port CKI cookie
    const addr = reply.args[2];
    const cookie = reply.args[4];
    if (reply.args[1] !== 'SB' || !addr || !cookie)
      throw new MsnProtocolError(`unexpected XFR reply ${reply.args.join(' ')}`);
    const sb = await Switchboard.create(addr, cookie, this.email, this.sbTimeouts(), (s) =>
      this.trackSwitchboard(s),
    );
    this.ready.add(sb);
    return sb;
  }

  private sbTimeouts() {
    return { connect: this.timeouts.connect, request: this.timeouts.request };
  }

  /** The open one-to-one switchboard with `email`, creating it (XFR SB, CAL, wait for JOI) if needed. */
  private chatWith(email: string): Promise<Switchboard> {
    const who = email.toLowerCase();
    const open = this.chats.get(who);
    if (open && !open.closed && !open.multiParty && open.participants.has(who)) return Promise.resolve(open);
    const pending = this.opening.get(who);
    if (pending) return pending;
    const p = (async () => {
      const sb = await this.openSwitchboard();
      try {
        await sb.invite(who);
        await sb.waitForJoin(who, this.timeouts.join);
      } catch (err) {
        sb.close();
        throw err;
      }
      this.chats.set(who, sb);
      return sb;
    })();
    this.opening.set(who, p);
    const clear = () => {
      if (this.opening.get(who) === p) this.opening.delete(who);
    };
    p.then(clear, clear);
    return p;
  }

  private trackSwitchboard(sb: Switchboard): void {
    this.switchboards.add(sb);
    sb.on('message', (from, nick, msg) => this.onSbMessage(sb, from, nick, msg));
    sb.on('joined', (email) => {
      if (sb.multiParty && this.ready.has(sb)) {
        for (const [peer, chat] of this.chats) if (chat === sb) this.chats.delete(peer);
        this.emit('conversation', { id: sb.id, participants: [...sb.participants.keys()], joined: email });
      }
    });
    sb.on('left', (email) => {
      if (sb.multiParty && this.ready.has(sb)) {
        this.emit('conversation', { id: sb.id, participants: [...sb.participants.keys()], left: email });
      }
      if (sb.participants.size === 0) sb.close();
    });
    sb.on('sendError', (err) => this.emitError(err));
    sb.on('closed', () => {
      this.switchboards.delete(sb);
      for (const [peer, chat] of this.chats) if (chat === sb) this.chats.delete(peer);
      this.p2p.switchboardClosed(sb);
      if (sb.multiParty && this.ready.has(sb)) {
        this.emit('conversation', { id: sb.id, participants: [], closed: true });
      }
    });
  }

  private async onRing(a: string[]): Promise<void> {
    // RNG session-id host:port CKI cookie inviter inviter-nick
    const [sessionId, addr, , cookie] = a;
    if (!sessionId || !addr || !cookie || !this.wantOnline) return;
    try {
      const sb = await Switchboard.answer(addr, cookie, sessionId, this.email, this.sbTimeouts(), (s) =>
        this.trackSwitchboard(s),
      );
      if (!this.wantOnline) {
        sb.close();
        return;
      }
      this.ready.add(sb);
      if (sb.multiParty) {
        this.emit('conversation', { id: sb.id, participants: [...sb.participants.keys()] });
      } else {
        const [peer] = sb.participants.keys();
        if (peer) this.chats.set(peer, sb);
        else sb.close();
      }
    } catch (err) {
      this.emitError(err as Error);
    }
  }

  private onSbMessage(sb: Switchboard, from: string, nickname: string, msg: MimeMessage): void {
    const conversationId = sb.multiParty ? sb.id : undefined;
    if (!sb.multiParty) {
      const current = this.chats.get(from);
      if (!current || current.closed) this.chats.set(from, sb);
    }
    const parsed = classifyMessage(msg);
    switch (parsed.kind) {
      case 'text':
        this.emit('message', { from, nickname, text: parsed.text, format: parsed.format, conversationId });
        break;
      case 'typing':
        this.emit('typing', { from, conversationId });
        break;
      case 'datacast':
        if (parsed.id === 1) this.emit('nudge', { from, conversationId });
        break;
      case 'p2p':
        if (parsed.dest.toLowerCase() === this.email) this.p2p.handle(sb, from, parsed.body);
        break;
      default:
        break;
    }
  }

  private closeSwitchboards(): void {
    for (const sb of this.switchboards) sb.close();
  }

  // ---------------------------------------------------------------- chat calls

  /**
   * Sends a text message; long texts are split into several MSGs. Resolves
   * once the server ACKed every part; rejects with MsnError(217) when the
   * contact is offline, MsnError(0) on NAK, MsnTimeoutError if they never join.
   */
  async sendMessage(to: string, text: string, format: TextFormat = DEFAULT_FORMAT): Promise<void> {
    this.requireOnline();
    const parts = splitText(text, format);
    const sb = await this.chatWith(to);
    for (const part of parts) await sb.send(buildTextMessage(part, format), 'A');
  }

  /** Sends a typing notification (unacknowledged). */
  async sendTyping(to: string): Promise<void> {
    this.requireOnline();
    const sb = await this.chatWith(to);
    await sb.send(buildTypingMessage(this.email), 'U');
  }

  /** Sends a nudge (datacast ID 1). */
  async sendNudge(to: string): Promise<void> {
    this.requireOnline();
    const sb = await this.chatWith(to);
    await sb.send(buildDatacast(1), 'N');
  }

  /**
   * Downloads a contact's current display picture over MSNSLP and returns
   * the bytes, verified against the SHA1D of their MSNObject.
   */
  async fetchAvatar(email: string): Promise<Buffer> {
    this.requireOnline();
    const who = email.toLowerCase();
    const obj = this.contactMap.get(who)?.msnObject;
    if (!obj) throw new MsnError(0, `${who} has no display picture`);
    const sb = await this.chatWith(who);
    return this.p2p.fetch(sb, who, obj);
  }

  // ---------------------------------------------------------------- conversations

  /**
   * Starts a multi-party conversation with the given contacts and resolves
   * with its id once everyone reachable has joined. Rejects if nobody could.
   */
  async startConversation(emails: string[]): Promise<string> {
    this.requireOnline();
    if (emails.length === 0) throw new MsnError(201, 'no participants', 'CAL');
    const sb = await this.openSwitchboard();
    sb.multiParty = true;
    const results = await Promise.allSettled(
      emails.map(async (e) => {
        await sb.invite(e);
        await sb.waitForJoin(e, this.timeouts.join);
      }),
    );
    if (sb.participants.size === 0) {
      sb.close();
      const firstError = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')?.reason;
      throw firstError instanceof Error ? firstError : new MsnError(0, 'nobody joined the conversation');
    }
    return sb.id;
  }

  private conversation(id: string): Switchboard {
    for (const sb of this.switchboards) if (sb.id === id && !sb.closed) return sb;
    throw new MsnError(0, `no open conversation ${id}`);
  }

  /** Invites one more contact; resolves when they have joined. */
  async inviteToConversation(id: string, email: string): Promise<void> {
    const sb = this.conversation(id);
    sb.multiParty = true;
    await sb.invite(email);
    await sb.waitForJoin(email, this.timeouts.join);
  }

  async sendToConversation(id: string, text: string, format: TextFormat = DEFAULT_FORMAT): Promise<void> {
    const sb = this.conversation(id);
    for (const part of splitText(text, format)) await sb.send(buildTextMessage(part, format), 'A');
  }

  async sendTypingToConversation(id: string): Promise<void> {
    await this.conversation(id).send(buildTypingMessage(this.email), 'U');
  }

  /** Leaves a conversation (OUT on its switchboard). */
  async leaveConversation(id: string): Promise<void> {
    const sb = this.conversation(id);
    sb.close();
    await withDeadline(sb.whenClosed(), 2000).catch(() => undefined);
  }
}

function asAuthError(err: unknown): unknown {
  if (
    err instanceof MsnError &&
    !(err instanceof MsnAuthError) &&
    (err.code === 911 || err.code === 917 || err.code === 928)
  ) {
    return new MsnAuthError(err.message, err.code);
  }
  return err;
}

function withDeadline<T>(p: Promise<T>, ms: number, what = 'operation'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new MsnTimeoutError(what)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}
