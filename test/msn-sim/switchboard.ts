// The switchboard server (SB): conversations.
//
// A user gets a cookie from the NS (XFR SB), logs in with USR, and invites
// others with CAL; the NS rings them (RNG) and they join with ANS, receiving
// the roster (IRO) while the others see JOI. MSG payloads are relayed
// byte-for-byte to every other participant whatever their content type
// (plain text, typing notifications, datacasts, binary P2P), and are
// acknowledged according to the sender's ack mode:
//   U: never, N: NAK only on failure, A and D: ACK on success / NAK on failure
//   (D also answers 282 when the payload is not a MIME message).
// "Failure" here means there was nobody else in the conversation to deliver to.
//
// Versions: MSNP12 adds the capabilities to JOI and IRO; from MSNP16 an
// account may be in a conversation from several endpoints: each logs in as
// "email;{machine-guid}", and MSNP16+ participants see each endpoint
// ("JOI email;{guid}", "BYE email;{guid}") besides the account itself
// ("JOI email" with the first endpoint, "BYE email" with the last), their own
// other endpoints included. Older participants see accounts only.

import { randomBytes, randomInt } from 'node:crypto';
import type { Socket } from 'node:net';
import { isValidHandle } from './accounts.ts';
import type { SimContext, SwitchboardDirectory } from './context.ts';
import { type Frame, FrameDecoder, clientPayloadRule, encodeCommand, msnEncode } from './framing.ts';
import type { NotificationRegistry } from './notification.ts';
import { capsFor } from './presence.ts';
import { LOOPBACK, TcpListener } from './tcp.ts';

interface Endpoint {
  email: string;
  protocol: number;
  /** Machine GUID (MSNP16+), braces included, lower case. */
  guid: string | null;
}

type Cookie = ({ kind: 'xfr' } | { kind: 'ans'; sessionId: string }) & Endpoint & { expires: number };

const COOKIE_LIFETIME_MS = 5 * 60 * 1000;
const GUID = /^\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}$/;

/** "email" or "email;{guid}" → its parts. */
function splitHandle(handle: string | undefined): { email: string; guid: string | null } | null {
  if (!handle) return null;
  const [email, guid] = handle.toLowerCase().split(';');
  if (!email) return null;
  return { email, guid: guid ?? null };
}

/** One participant's connection. */
class SbConnection {
  private readonly decoder = new FrameDecoder(clientPayloadRule);
  email = '';
  guid: string | null = null;
  protocol = 0;
  session: SbSession | null = null;
  private closed = false;

  constructor(
    private readonly server: SwitchboardServer,
    readonly socket: Socket,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('close', () => this.finish());
    socket.on('error', () => {
      // 'close' follows and cleans up.
    });
  }

  /** How others of protocol `v` name this endpoint: "email;{guid}" for MSNP16+ viewers. */
  endpointHandle(v: number): string | null {
    return v >= 16 && this.guid ? `${this.email};${this.guid}` : null;
  }

  send(line: string, payload?: Buffer): void {
    if (this.closed || this.socket.destroyed) return;
    this.server.ctx.log({ server: 'SB', direction: 'out', email: this.email || undefined, text: line });
    this.socket.write(encodeCommand(line, payload));
  }

  close(): void {
    this.finish();
    if (this.socket.destroyed) return;
    this.socket.end();
    // Do not wait for a slow peer forever.
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  /** Leaves the conversation (the others get BYE). */
  finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.session?.leave(this);
    this.session = null;
  }

  private onData(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch {
      this.close();
      return;
    }
    for (const frame of frames) {
      if (this.closed) return;
      this.server.ctx.log({ server: 'SB', direction: 'in', email: this.email || undefined, text: frame.line });
      this.handle(frame);
    }
  }

  private handle(frame: Frame): void {
    const { name, args } = frame;
    if (name === 'OUT') {
      this.close();
      return;
    }
    const trid = args[0];
    if (trid === undefined || !/^\d+$/.test(trid)) {
      this.close();
      return;
    }
    if (!this.session) {
      if (name === 'USR') {
        this.server.onUsr(this, trid, args.slice(1));
        return;
      }
      if (name === 'ANS') {
        this.server.onAns(this, trid, args.slice(1));
        return;
      }
      this.close();
      return;
    }
    switch (name) {
      case 'CAL':
        this.session.call(this, trid, args[1]);
        return;
      case 'MSG':
        this.session.message(this, trid, args[1], frame.payload ?? Buffer.alloc(0));
        return;
      default:
        this.close();
    }
  }
}

/** One conversation. */
class SbSession {
  /** Every endpoint in the conversation. */
  readonly connections = new Set<SbConnection>();
  /** Invited but not yet joined: email -> ring cookies (one per endpoint rung). */
  readonly ringing = new Map<string, { cookies: string[]; timer: NodeJS.Timeout }>();
  private idleTimer: NodeJS.Timeout | null = null;
  ended = false;

  constructor(
    private readonly server: SwitchboardServer,
    readonly id: string,
  ) {
    this.touch();
  }

  /** Accounts in the conversation (one entry per account, whatever its endpoints). */
  get participants(): Map<string, SbConnection> {
    const out = new Map<string, SbConnection>();
    for (const c of this.connections) if (!out.has(c.email)) out.set(c.email, c);
    return out;
  }

  private endpointsOf(email: string, except?: SbConnection): SbConnection[] {
    return [...this.connections].filter((c) => c.email === email && c !== except);
  }

  /** Restarts the idle countdown; an idle conversation is closed by the server. */
  touch(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    const ms = this.server.ctx.options.switchboardIdleMs;
    if (ms <= 0) return;
    this.idleTimer = setTimeout(() => this.expire(), ms);
    this.idleTimer.unref();
  }

  friendlyName(email: string): string {
    return msnEncode(this.server.ctx.accounts.get(email)?.friendlyName ?? email);
  }

  /** The capabilities of an endpoint as a viewer of protocol `v` reads them (MSNP12+). */
  caps(c: SbConnection, v: number): string {
    const ns = this.server.registry.sessionsOf(c.email);
    const s = ns.find((x) => x.machineGuid === c.guid) ?? ns[0];
    return capsFor(s?.capabilities ?? '0', v);
  }

  /** The IRO lines a joining endpoint gets (everyone already there). */
  roster(joiner: SbConnection): string[] {
    const v = joiner.protocol;
    const lines: string[] = [];
    const named = new Set<string>();
    for (const c of this.connections) {
      if (c === joiner) continue;
      const own = c.email === joiner.email;
      const tail = (handle: string) =>
        `${handle} ${this.friendlyName(c.email)}${v >= 12 ? ` ${this.caps(c, v)}` : ''}`;
      const ep = c.endpointHandle(v);
      if (ep) lines.push(tail(ep));
      if (!own && !named.has(c.email)) {
        named.add(c.email);
        lines.push(tail(c.email));
      }
    }
    return lines;
  }

  join(conn: SbConnection): void {
    const first = this.endpointsOf(conn.email).length === 0;
    for (const other of this.connections) {
      const v = other.protocol;
      const tail = `${this.friendlyName(conn.email)}${v >= 12 ? ` ${this.caps(conn, v)}` : ''}`;
      const ep = conn.endpointHandle(v);
      if (ep) other.send(`JOI ${ep} ${tail}`);
      if (first && other.email !== conn.email) other.send(`JOI ${conn.email} ${tail}`);
    }
    conn.session = this;
    this.connections.add(conn);
    const pending = this.ringing.get(conn.email);
    if (pending) {
      clearTimeout(pending.timer);
      this.ringing.delete(conn.email);
    }
  }

  call(from: SbConnection, trid: string, target: string | undefined): void {
    if (target === undefined) {
      from.close();
      return;
    }
    const email = target.toLowerCase();
    if (!isValidHandle(email)) {
      from.send(`208 ${trid}`);
      return;
    }
    if (this.participants.has(email) || this.ringing.has(email)) {
      from.send(`215 ${trid}`);
      return;
    }
    const registry = this.server.registry;
    const reach = registry.reachable(from.email, email);
    if (reach === 'offline') {
      from.send(`217 ${trid}`);
      return;
    }
    if (reach === 'blocked') {
      from.send(`216 ${trid}`);
      return;
    }
    const callees = registry.sessionsOf(email);
    if (callees.length === 0) {
      from.send(`217 ${trid}`);
      return;
    }
    // Every endpoint of the callee rings, each with its own cookie.
    const cookies: string[] = [];
    for (const callee of callees) {
      const cookie = this.server.issueRingCookie({ email, protocol: callee.protocol, guid: callee.machineGuid }, this.id);
      cookies.push(cookie);
      const tail = callee.protocol >= 14 ? ' U messenger.msn.com 1' : callee.protocol >= 13 ? ' U messenger.msn.com' : '';
      callee.send(`RNG ${this.id} ${this.server.address()} CKI ${cookie} ${from.email} ${this.friendlyName(from.email)}${tail}`);
    }
    const timer = setTimeout(() => {
      this.ringing.delete(email);
      for (const c of cookies) this.server.dropCookie(c);
    }, this.server.ctx.options.ringTimeoutMs);
    timer.unref();
    this.ringing.set(email, { cookies, timer });
    from.send(`CAL ${trid} RINGING ${this.id}`);
    this.touch();
  }

  message(from: SbConnection, trid: string, ack: string | undefined, payload: Buffer): void {
    if (ack !== 'U' && ack !== 'N' && ack !== 'A' && ack !== 'D') {
      from.close();
      return;
    }
    if (ack === 'D' && payload.indexOf('\r\n\r\n') < 0) {
      from.send(`282 ${trid}`);
      return;
    }
    const recipients = [...this.connections].filter((c) => c !== from);
    const header = `MSG ${from.email} ${this.friendlyName(from.email)} ${payload.length}`;
    for (const conn of recipients) conn.send(header, payload);
    const delivered = recipients.some((c) => c.email !== from.email);
    if (ack === 'A' || ack === 'D') from.send(delivered ? `ACK ${trid}` : `NAK ${trid}`);
    else if (ack === 'N' && !delivered) from.send(`NAK ${trid}`);
    this.touch();
  }

  leave(conn: SbConnection): void {
    if (!this.connections.delete(conn)) return;
    const last = this.endpointsOf(conn.email).length === 0;
    for (const other of this.connections) {
      const ep = conn.endpointHandle(other.protocol);
      if (ep) other.send(`BYE ${ep}`);
      if (last && other.email !== conn.email) other.send(`BYE ${conn.email}`);
    }
    if (this.connections.size === 0) this.end();
  }

  /**
   * Idle timeout: the server disconnects everyone, and each participant is
   * told that every other one was timed out (BYE handle 1).
   */
  private expire(): void {
    this.server.ctx.log({ server: 'SB', direction: 'info', text: `session ${this.id} idle, closing` });
    const conns = [...this.connections];
    const accounts = [...this.participants.keys()];
    for (const p of conns) {
      for (const email of accounts) if (email !== p.email) p.send(`BYE ${email} 1`);
    }
    this.connections.clear();
    for (const conn of conns) conn.close();
    this.end();
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    for (const { cookies, timer } of this.ringing.values()) {
      clearTimeout(timer);
      for (const c of cookies) this.server.dropCookie(c);
    }
    this.ringing.clear();
    this.server.sessions.delete(this.id);
  }
}

export class SwitchboardServer implements SwitchboardDirectory {
  private readonly listener: TcpListener;
  private readonly cookies = new Map<string, Cookie>();
  readonly sessions = new Map<string, SbSession>();
  private readonly connections = new Set<SbConnection>();

  constructor(
    readonly ctx: SimContext,
    readonly registry: NotificationRegistry,
  ) {
    this.listener = new TcpListener((socket) => {
      const conn = new SbConnection(this, socket);
      this.connections.add(conn);
      socket.once('close', () => this.connections.delete(conn));
    });
  }

  get port(): number {
    return this.listener.port;
  }

  address(): string {
    return `${LOOPBACK}:${this.listener.port}`;
  }

  start(port: number): Promise<number> {
    return this.listener.start(port);
  }

  /** Drops every conversation and connection; cookies die with them. */
  async stop(): Promise<void> {
    for (const session of [...this.sessions.values()]) session.end();
    this.sessions.clear();
    this.cookies.clear();
    for (const conn of this.connections) conn.finish();
    this.connections.clear();
    await this.listener.stop();
  }

  issueXfrCookie(email: string, protocol: number, machineGuid: string | null): string {
    const cookie = this.newCookie();
    this.cookies.set(cookie, {
      kind: 'xfr',
      email: email.toLowerCase(),
      protocol,
      guid: machineGuid,
      expires: Date.now() + COOKIE_LIFETIME_MS,
    });
    return cookie;
  }

  issueRingCookie(endpoint: Endpoint, sessionId: string): string {
    const cookie = this.newCookie();
    this.cookies.set(cookie, { kind: 'ans', ...endpoint, sessionId, expires: Date.now() + COOKIE_LIFETIME_MS });
    return cookie;
  }

  dropCookie(cookie: string): void {
    this.cookies.delete(cookie);
  }

  /** Takes a cookie out of the table (they are single use). */
  private takeCookie(cookie: string | undefined): Cookie | undefined {
    if (cookie === undefined) return undefined;
    const entry = this.cookies.get(cookie);
    this.cookies.delete(cookie);
    if (!entry || entry.expires < Date.now()) return undefined;
    return entry;
  }

  /** The handle must name the cookie's endpoint: MSNP16+ endpoints log in as "email;{guid}". */
  private matches(handle: ReturnType<typeof splitHandle>, cookie: Cookie): boolean {
    if (!handle || handle.email !== cookie.email) return false;
    if (cookie.protocol >= 16 && cookie.guid) return handle.guid === cookie.guid && GUID.test(handle.guid);
    return handle.guid === null;
  }

  /** "USR trid handle cookie": the caller opens a new conversation. */
  onUsr(conn: SbConnection, trid: string, args: string[]): void {
    const handle = splitHandle(args[0]);
    const cookie = this.takeCookie(args[1]);
    if (cookie?.kind !== 'xfr' || !this.matches(handle, cookie)) {
      conn.send(`911 ${trid}`);
      conn.close();
      return;
    }
    const session = new SbSession(this, this.newSessionId());
    this.sessions.set(session.id, session);
    conn.email = cookie.email;
    conn.guid = cookie.guid;
    conn.protocol = cookie.protocol;
    session.join(conn);
    conn.send(`USR ${trid} OK ${args[0]} ${session.friendlyName(cookie.email)}`);
  }

  /** "ANS trid handle cookie session-id": an invitee joins. */
  onAns(conn: SbConnection, trid: string, args: string[]): void {
    const handle = splitHandle(args[0]);
    const sessionId = args[2];
    const cookie = this.takeCookie(args[1]);
    const session = sessionId === undefined ? undefined : this.sessions.get(sessionId);
    if (cookie?.kind !== 'ans' || !this.matches(handle, cookie) || cookie.sessionId !== sessionId || !session) {
      // No documented error for a bad ANS: the server just hangs up.
      conn.close();
      return;
    }
    conn.email = cookie.email;
    conn.guid = cookie.guid;
    conn.protocol = cookie.protocol;
    const lines = session.roster(conn);
    for (const [index, line] of lines.entries()) conn.send(`IRO ${trid} ${index + 1} ${lines.length} ${line}`);
    session.join(conn);
    conn.send(`ANS ${trid} OK`);
    session.touch();
  }

  private newCookie(): string {
    // Same shape as the real cookies: dotted decimal numbers.
    return `${randomInt(1e8, 1e9)}.${randomInt(1e8, 1e9)}.${randomBytes(4).readUInt32BE(0)}`;
  }

  private newSessionId(): string {
    let id: string;
    do id = String(randomInt(100_000_000, 2_000_000_000));
    while (this.sessions.has(id));
    return id;
  }
}
