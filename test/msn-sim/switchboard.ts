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

import { randomBytes, randomInt } from 'node:crypto';
import type { Socket } from 'node:net';
import { isValidHandle } from './accounts.ts';
import type { SimContext, SwitchboardDirectory } from './context.ts';
import { type Frame, FrameDecoder, clientPayloadRule, encodeCommand, msnEncode } from './framing.ts';
import type { NotificationRegistry } from './notification.ts';
import { LOOPBACK, TcpListener } from './tcp.ts';

type Cookie =
  | { kind: 'xfr'; email: string; expires: number }
  | { kind: 'ans'; email: string; sessionId: string; expires: number };

const COOKIE_LIFETIME_MS = 5 * 60 * 1000;

/** One participant's connection. */
class SbConnection {
  private readonly decoder = new FrameDecoder(clientPayloadRule);
  email = '';
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
      this.server.ctx.log({
        server: 'SB',
        direction: 'in',
        email: this.email || undefined,
        text: frame.line,
      });
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
  readonly participants = new Map<string, SbConnection>();
  /** Invited but not yet joined: email -> ring cookie. */
  readonly ringing = new Map<string, { cookie: string; timer: NodeJS.Timeout }>();
  private idleTimer: NodeJS.Timeout | null = null;
  ended = false;

  constructor(
    private readonly server: SwitchboardServer,
    readonly id: string,
  ) {
    this.touch();
  }

  /** Restarts the idle countdown; an idle conversation is closed by the server. */
  touch(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    const ms = this.server.ctx.options.switchboardIdleMs;
    if (ms <= 0) return;
    this.idleTimer = setTimeout(() => this.expire(), ms);
    this.idleTimer.unref();
  }

  join(conn: SbConnection): void {
    conn.session = this;
    this.participants.set(conn.email, conn);
    const pending = this.ringing.get(conn.email);
    if (pending) {
      clearTimeout(pending.timer);
      this.ringing.delete(conn.email);
    }
  }

  friendlyName(email: string): string {
    return msnEncode(this.server.ctx.accounts.get(email)?.friendlyName ?? email);
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
    const callee = registry.sessionOf(email);
    if (!callee) {
      from.send(`217 ${trid}`);
      return;
    }
    const cookie = this.server.issueRingCookie(email, this.id);
    const timer = setTimeout(() => {
      this.ringing.delete(email);
      this.server.dropCookie(cookie);
    }, this.server.ctx.options.ringTimeoutMs);
    timer.unref();
    this.ringing.set(email, { cookie, timer });
    callee.send(
      `RNG ${this.id} ${this.server.address()} CKI ${cookie} ${from.email} ${this.friendlyName(from.email)}`,
    );
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
    const recipients = [...this.participants.values()].filter((c) => c !== from);
    const header = `MSG ${from.email} ${this.friendlyName(from.email)} ${payload.length}`;
    for (const conn of recipients) conn.send(header, payload);
    const delivered = recipients.length > 0;
    if (ack === 'A' || ack === 'D') from.send(delivered ? `ACK ${trid}` : `NAK ${trid}`);
    else if (ack === 'N' && !delivered) from.send(`NAK ${trid}`);
    this.touch();
  }

  leave(conn: SbConnection): void {
    if (this.participants.get(conn.email) !== conn) return;
    this.participants.delete(conn.email);
    for (const other of this.participants.values()) other.send(`BYE ${conn.email}`);
    if (this.participants.size === 0) this.end();
  }

  /**
   * Idle timeout: the server disconnects everyone, and each participant is
   * told that every other one was timed out (BYE handle 1).
   */
  private expire(): void {
    this.server.ctx.log({ server: 'SB', direction: 'info', text: `session ${this.id} idle, closing` });
    const conns = [...this.participants.values()];
    for (const p of conns) {
      for (const q of conns) if (p !== q) p.send(`BYE ${q.email} 1`);
    }
    this.participants.clear();
    for (const conn of conns) conn.close();
    this.end();
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    for (const { cookie, timer } of this.ringing.values()) {
      clearTimeout(timer);
      this.server.dropCookie(cookie);
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

  issueXfrCookie(email: string): string {
    const cookie = this.newCookie();
    this.cookies.set(cookie, {
      kind: 'xfr',
      email: email.toLowerCase(),
      expires: Date.now() + COOKIE_LIFETIME_MS,
    });
    return cookie;
  }

  issueRingCookie(email: string, sessionId: string): string {
    const cookie = this.newCookie();
    this.cookies.set(cookie, { kind: 'ans', email, sessionId, expires: Date.now() + COOKIE_LIFETIME_MS });
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

  /** "USR trid handle cookie": the caller opens a new conversation. */
  onUsr(conn: SbConnection, trid: string, args: string[]): void {
    const email = args[0]?.toLowerCase();
    const cookie = this.takeCookie(args[1]);
    if (email === undefined || cookie?.kind !== 'xfr' || cookie.email !== email) {
      conn.send(`911 ${trid}`);
      conn.close();
      return;
    }
    const session = new SbSession(this, this.newSessionId());
    this.sessions.set(session.id, session);
    conn.email = email;
    session.join(conn);
    conn.send(`USR ${trid} OK ${email} ${session.friendlyName(email)}`);
  }

  /** "ANS trid handle cookie session-id": an invitee joins. */
  onAns(conn: SbConnection, trid: string, args: string[]): void {
    const email = args[0]?.toLowerCase();
    const sessionId = args[2];
    const cookie = this.takeCookie(args[1]);
    const session = sessionId === undefined ? undefined : this.sessions.get(sessionId);
    if (
      email === undefined ||
      cookie?.kind !== 'ans' ||
      cookie.email !== email ||
      cookie.sessionId !== sessionId ||
      !session ||
      session.participants.has(email)
    ) {
      // No documented error for a bad ANS: the server just hangs up.
      conn.close();
      return;
    }
    conn.email = email;
    const others = [...session.participants.values()];
    others.forEach((other, index) => {
      conn.send(
        `IRO ${trid} ${index + 1} ${others.length} ${other.email} ${session.friendlyName(other.email)}`,
      );
    });
    session.join(conn);
    conn.send(`ANS ${trid} OK`);
    for (const other of others) other.send(`JOI ${email} ${session.friendlyName(email)}`);
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
