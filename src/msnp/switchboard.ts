/**
 * One switchboard (SB) session: the per-conversation server that relays MSGs
 * between its participants.
 *
 * We reach one either by asking the notification server (XFR SB → USR with
 * the cookie, then CAL each invitee) or by being invited (RNG → ANS, the
 * server lists who is already there with IRO). Participants come and go with
 * JOI and BYE. Text MSGs use ack mode A so a send resolves only when the
 * server confirms delivery (ACK) and fails on NAK.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { MsnCommand } from './command.ts';
import { MsnConnection } from './connection.ts';
import { MsnConnectionError, MsnError, MsnTimeoutError } from './errors.ts';
import { type MimeMessage, parseMime } from './mime.ts';
import { parseHandle } from './presence.ts';
import type { MsnTrace } from './trace.ts';

export type AckMode = 'U' | 'N' | 'A' | 'D';

export interface SwitchboardTimeouts {
  connect: number;
  request: number;
  /** Receives every command line in and out (secrets redacted). */
  trace?: MsnTrace;
}

export interface SwitchboardEvents {
  /** Someone is in the session (JOI, or listed by IRO when we answered). */
  joined: [email: string, nickname: string];
  /** Someone left; `idle` when the server closed them out for inactivity. */
  left: [email: string, idle: boolean];
  message: [from: string, nickname: string, msg: MimeMessage];
  /** A server error for a MSG sent without waiting (modes U/N/D). */
  sendError: [MsnError];
  closed: [];
}

function decodeNick(s: string | undefined, fallback: string): string {
  if (!s) return fallback;
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export class Switchboard extends EventEmitter<SwitchboardEvents> {
  /** Local id, used as the conversation id for multi-party chats. */
  readonly id: string = randomUUID();
  /** Other participants (lowercased email → nickname). */
  readonly participants = new Map<string, string>();
  /** Last time anything was sent or received; drives idle closing. */
  lastActivity = Date.now();
  private readonly conn: MsnConnection;
  private readonly myEmail: string;
  private readonly timeouts: SwitchboardTimeouts;
  private joinWaiters: {
    email: string;
    resolve: () => void;
    reject: (e: Error) => void;
    timer: NodeJS.Timeout;
  }[] = [];
  private isClosed = false;
  /** Set by close(): the SB must not be reused while its socket finishes closing. */
  private leaving = false;
  /** True once this SB has ever had more than one other participant, or was started as a group chat. */
  multiParty = false;

  private constructor(conn: MsnConnection, myEmail: string, timeouts: SwitchboardTimeouts) {
    super();
    this.conn = conn;
    this.myEmail = myEmail.toLowerCase();
    this.timeouts = timeouts;
    conn.on('command', (cmd) => this.onCommand(cmd));
    conn.on('close', () => this.onClose());
  }

  /**
   * Joins a switchboard the notification server handed us with XFR SB.
   * `handle` is how we log in: the email, or "email;{machine-guid}" from MSNP16.
   */
  static async create(
    addr: string,
    cookie: string,
    myEmail: string,
    timeouts: SwitchboardTimeouts,
    setup?: (sb: Switchboard) => void,
    handle = myEmail,
  ): Promise<Switchboard> {
    const [host, port] = splitHostPort(addr);
    const conn = await MsnConnection.connect(host, port, {
      connectTimeout: timeouts.connect,
      requestTimeout: timeouts.request,
      trace: timeouts.trace,
      server: 'SB',
    });
    const sb = new Switchboard(conn, myEmail, timeouts);
    setup?.(sb);
    try {
      await conn.request('USR', [handle, cookie]);
    } catch (err) {
      sb.close();
      throw err;
    }
    return sb;
  }

  /**
   * Answers an RNG invitation; resolves once the server has listed the
   * participants (IRO) and confirmed with ANS OK. `setup` runs before ANS so
   * listeners see the IRO joins.
   */
  static async answer(
    addr: string,
    cookie: string,
    sessionId: string,
    myEmail: string,
    timeouts: SwitchboardTimeouts,
    setup?: (sb: Switchboard) => void,
    handle = myEmail,
  ): Promise<Switchboard> {
    const [host, port] = splitHostPort(addr);
    const conn = await MsnConnection.connect(host, port, {
      connectTimeout: timeouts.connect,
      requestTimeout: timeouts.request,
      trace: timeouts.trace,
      server: 'SB',
    });
    const sb = new Switchboard(conn, myEmail, timeouts);
    setup?.(sb);
    try {
      await conn.request('ANS', [handle, cookie, sessionId]);
    } catch (err) {
      sb.close();
      throw err;
    }
    return sb;
  }

  /** True once close() was called or the connection dropped; such an SB is never reused. */
  get closed(): boolean {
    return this.isClosed || this.leaving;
  }

  /** Invites a contact (CAL). Resolves on RINGING; the contact is in once 'joined' fires. */
  async invite(email: string): Promise<void> {
    this.lastActivity = Date.now();
    await this.conn.request('CAL', [email]);
  }

  /** Resolves when `email` is a participant; rejects on timeout or close. */
  waitForJoin(email: string, timeout = this.timeouts.request): Promise<void> {
    const who = email.toLowerCase();
    if (this.participants.has(who)) return Promise.resolve();
    if (this.closed) return Promise.reject(new MsnConnectionError('switchboard closed'));
    return new Promise((resolve, reject) => {
      const waiter = {
        email: who,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.joinWaiters = this.joinWaiters.filter((w) => w !== waiter);
          reject(new MsnTimeoutError(`${who} joining the switchboard`));
        }, timeout),
      };
      this.joinWaiters.push(waiter);
    });
  }

  /**
   * Sends one MSG. Mode A waits for ACK (NAK rejects with MsnError code 0);
   * modes U/N/D return as soon as the bytes are written.
   */
  async send(payload: Buffer, mode: AckMode): Promise<void> {
    if (this.closed) throw new MsnConnectionError('switchboard closed');
    this.lastActivity = Date.now();
    if (mode === 'A') {
      const reply = await this.conn.request('MSG', [mode], { payload, accept: ['ACK', 'NAK'] });
      if (reply.name === 'NAK') throw new MsnError(0, 'message not delivered (NAK)', 'MSG');
      return;
    }
    this.conn.send('MSG', [mode], payload);
  }

  /** Resolves once the socket is really gone. */
  whenClosed(): Promise<void> {
    if (this.isClosed) return Promise.resolve();
    return new Promise((resolve) => this.once('closed', () => resolve()));
  }

  /** Leaves the session politely (OUT) and closes the socket. */
  close(): void {
    this.leaving = true;
    if (this.conn.isOpen) {
      this.conn.sendBare('OUT');
      this.conn.close();
    }
  }

  private onCommand(cmd: MsnCommand): void {
    this.lastActivity = Date.now();
    switch (cmd.name) {
      case 'IRO': {
        // IRO trid index total handle nick [caps]. From MSNP16 each endpoint is
        // listed ("email;{guid}") besides the account, so the total counts endpoints:
        // who is there is decided by the distinct addresses.
        const email = parseHandle(cmd.args[3]);
        if (email) this.addParticipant(email, decodeNick(cmd.args[4], email));
        break;
      }
      case 'JOI': {
        const email = parseHandle(cmd.args[0]);
        if (email) this.addParticipant(email, decodeNick(cmd.args[1], email));
        break;
      }
      case 'BYE': {
        // MSNP16+: "BYE email;{guid}" is one endpoint leaving; "BYE email" the last one.
        if (cmd.args[0]?.includes(';')) break;
        const email = parseHandle(cmd.args[0]);
        if (email && this.participants.delete(email)) this.emit('left', email, cmd.args[1] === '1');
        break;
      }
      case 'MSG': {
        const from = parseHandle(cmd.args[0]);
        if (!from || !cmd.payload) break;
        // Our own other endpoints (MSNP16+) sit in the conversation too: their messages are not news.
        if (from === this.myEmail) break;
        this.emit('message', from, decodeNick(cmd.args[1], from), parseMime(cmd.payload));
        break;
      }
      default:
        if (/^\d{3}$/.test(cmd.name))
          this.emit('sendError', new MsnError(Number(cmd.name), undefined, 'MSG'));
    }
  }

  private addParticipant(email: string, nickname: string): void {
    const who = email.toLowerCase();
    if (who === this.myEmail) return;
    const isNew = !this.participants.has(who);
    this.participants.set(who, nickname);
    if (this.participants.size > 1) this.multiParty = true;
    if (isNew) this.emit('joined', who, nickname);
    const ready = this.joinWaiters.filter((w) => w.email === who);
    this.joinWaiters = this.joinWaiters.filter((w) => w.email !== who);
    for (const w of ready) {
      clearTimeout(w.timer);
      w.resolve();
    }
  }

  private onClose(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const w of this.joinWaiters) {
      clearTimeout(w.timer);
      w.reject(new MsnConnectionError('switchboard closed'));
    }
    this.joinWaiters = [];
    this.emit('closed');
  }
}

export function splitHostPort(addr: string, defaultPort = 1863): [string, number] {
  const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(addr);
  if (!m) return [addr, defaultPort];
  return [m[1]!, m[2] ? Number(m[2]) : defaultPort];
}
