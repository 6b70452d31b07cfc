/**
 * The switchboards of one login: one-to-one chats (opened on demand with
 * XFR SB + CAL, reused while open), multi-party conversations, invitations
 * from others (RNG), idle closing, and the P2P transfers riding on them.
 */
import { MsnError, MsnProtocolError } from './errors.ts';
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
import { type OwnAvatar, P2PManager } from './p2p-transfer.ts';
import { type SessionCore, withDeadline } from './session-core.ts';
import { Switchboard } from './switchboard.ts';

export class Switchboards {
  readonly p2p: P2PManager;
  private readonly all = new Set<Switchboard>();
  /** Open one-to-one switchboard per contact. */
  private readonly chats = new Map<string, Switchboard>();
  /** One-to-one switchboards being set up, so concurrent sends share one. */
  private readonly opening = new Map<string, Promise<Switchboard>>();
  /** Switchboards whose USR/ANS has completed (conversation events start then). */
  private readonly ready = new WeakSet<Switchboard>();
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly core: SessionCore,
    getAvatar: () => OwnAvatar | undefined,
  ) {
    this.p2p = new P2PManager({
      myEmail: core.email,
      getAvatar,
      timeout: core.timeouts.transfer,
      fileTimeout: core.timeouts.fileTransfer,
      // Offers are handed on as events; with nobody listening they are declined.
      onFileOffer: (offer) => {
        if (!core.emitFileOffer(offer)) offer.decline();
      },
    });
  }

  /** Multi-party conversations currently open. */
  get conversations(): { id: string; participants: string[] }[] {
    return [...this.all]
      .filter((sb) => sb.multiParty && !sb.closed)
      .map((sb) => ({ id: sb.id, participants: [...sb.participants.keys()] }));
  }

  private async open(): Promise<Switchboard> {
    const conn = this.core.requireOnline();
    const reply = await conn.request('XFR', ['SB']);
    // XFR trid SB host:port CKI cookie
    const addr = reply.args[2];
    const cookie = reply.args[4];
    if (reply.args[1] !== 'SB' || !addr || !cookie) throw new MsnProtocolError(`unexpected XFR reply ${reply.args.join(' ')}`);
    const sb = await Switchboard.create(addr, cookie, this.core.email, this.sbTimeouts(), (s) => this.track(s), this.handle());
    this.ready.add(sb);
    return sb;
  }

  /** How we log in to a switchboard: from MSNP16 with our endpoint's machine GUID. */
  private handle(): string {
    return this.core.version >= 16 ? `${this.core.email};${this.core.machineGuid}` : this.core.email;
  }

  private sbTimeouts() {
    return { connect: this.core.timeouts.connect, request: this.core.timeouts.request, trace: this.core.opts.trace };
  }

  /** The open one-to-one switchboard with `email`, creating it (XFR SB, CAL, wait for JOI) if needed. */
  chatWith(email: string): Promise<Switchboard> {
    const who = email.toLowerCase();
    const open = this.chats.get(who);
    if (open && !open.closed && !open.multiParty && open.participants.has(who)) return Promise.resolve(open);
    const pending = this.opening.get(who);
    if (pending) return pending;
    const p = (async () => {
      const sb = await this.open();
      try {
        await sb.invite(who);
        await sb.waitForJoin(who, this.core.timeouts.join);
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

  private track(sb: Switchboard): void {
    const core = this.core;
    this.all.add(sb);
    sb.on('message', (from, nick, msg) => this.onMessage(sb, from, nick, msg));
    sb.on('joined', (email) => {
      if (sb.multiParty && this.ready.has(sb)) {
        for (const [peer, chat] of this.chats) if (chat === sb) this.chats.delete(peer);
        core.emit('conversation', { id: sb.id, participants: [...sb.participants.keys()], joined: email });
      }
    });
    sb.on('left', (email) => {
      if (sb.multiParty && this.ready.has(sb)) {
        core.emit('conversation', { id: sb.id, participants: [...sb.participants.keys()], left: email });
      }
      if (sb.participants.size === 0) sb.close();
    });
    sb.on('sendError', (err) => core.emitError(err));
    sb.on('closed', () => {
      this.all.delete(sb);
      for (const [peer, chat] of this.chats) if (chat === sb) this.chats.delete(peer);
      this.p2p.switchboardClosed(sb);
      if (sb.multiParty && this.ready.has(sb)) core.emit('conversation', { id: sb.id, participants: [], closed: true });
    });
  }

  /** RNG session-id host:port CKI cookie inviter inviter-nick: someone invites us. */
  async onRing(a: string[]): Promise<void> {
    const core = this.core;
    const [sessionId, addr, , cookie] = a;
    if (!sessionId || !addr || !cookie || !core.wantOnline) return;
    try {
      const sb = await Switchboard.answer(addr, cookie, sessionId, core.email, this.sbTimeouts(), (s) => this.track(s), this.handle());
      if (!core.wantOnline) {
        sb.close();
        return;
      }
      this.ready.add(sb);
      if (sb.multiParty) {
        core.emit('conversation', { id: sb.id, participants: [...sb.participants.keys()] });
      } else {
        const [peer] = sb.participants.keys();
        if (peer) this.chats.set(peer, sb);
        else sb.close();
      }
    } catch (err) {
      core.emitError(err as Error);
    }
  }

  private onMessage(sb: Switchboard, from: string, nickname: string, msg: MimeMessage): void {
    const core = this.core;
    const conversationId = sb.multiParty ? sb.id : undefined;
    if (!sb.multiParty) {
      const current = this.chats.get(from);
      if (!current || current.closed) this.chats.set(from, sb);
    }
    const parsed = classifyMessage(msg);
    switch (parsed.kind) {
      case 'text':
        core.emit('message', { from, nickname, text: parsed.text, format: parsed.format, conversationId });
        break;
      case 'typing':
        core.emit('typing', { from, conversationId });
        break;
      case 'datacast':
        if (parsed.id === 1) core.emit('nudge', { from, conversationId });
        break;
      case 'p2p':
        if (parsed.dest.toLowerCase() === core.email) this.p2p.handle(sb, from, parsed.body);
        break;
      default:
        break;
    }
  }

  /** Starts closing every switchboard; the promise settles once their sockets are gone. */
  closeAll(): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const sb of this.all) {
      closing.push(sb.whenClosed());
      sb.close();
    }
    return Promise.all(closing).then(() => undefined);
  }

  /** Starts closing switchboards idle longer than `switchboardIdle`. */
  startIdleSweep(): void {
    if (this.idleTimer) return;
    const idle = this.core.timeouts.switchboardIdle;
    const every = Math.max(50, Math.min(30_000, idle / 4));
    this.idleTimer = setInterval(() => {
      const now = Date.now();
      for (const sb of this.all) if (now - sb.lastActivity > idle) sb.close();
    }, every);
    this.idleTimer.unref();
  }

  stopIdleSweep(): void {
    clearInterval(this.idleTimer);
    this.idleTimer = undefined;
  }

  // ---------------------------------------------------------------- chat calls

  async sendMessage(to: string, text: string, format: TextFormat = DEFAULT_FORMAT): Promise<void> {
    this.core.requireOnline();
    const parts = splitText(text, format);
    const sb = await this.chatWith(to);
    for (const part of parts) await sb.send(buildTextMessage(part, format), 'A');
  }

  async sendTyping(to: string): Promise<void> {
    this.core.requireOnline();
    const sb = await this.chatWith(to);
    await sb.send(buildTypingMessage(this.core.email), 'U');
  }

  async sendNudge(to: string): Promise<void> {
    this.core.requireOnline();
    const sb = await this.chatWith(to);
    await sb.send(buildDatacast(1), 'N');
  }

  /** Offers a file over MSNP2P; 'accepted' once the contact has every byte, 'declined' if they refused. */
  async sendFile(to: string, name: string, data: Buffer): Promise<'accepted' | 'declined'> {
    this.core.requireOnline();
    const sb = await this.chatWith(to);
    return this.p2p.files.send(sb, to.toLowerCase(), name, data);
  }

  async fetchAvatar(email: string): Promise<Buffer> {
    this.core.requireOnline();
    const who = email.toLowerCase();
    const obj = this.core.contacts.get(who)?.msnObject;
    if (!obj) throw new MsnError(0, `${who} has no display picture`);
    const sb = await this.chatWith(who);
    return this.p2p.fetch(sb, who, obj);
  }

  // ---------------------------------------------------------------- conversations

  async startConversation(emails: string[]): Promise<string> {
    this.core.requireOnline();
    if (emails.length === 0) throw new MsnError(201, 'no participants', 'CAL');
    const sb = await this.open();
    sb.multiParty = true;
    const results = await Promise.allSettled(
      emails.map(async (e) => {
        await sb.invite(e);
        await sb.waitForJoin(e, this.core.timeouts.join);
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
    for (const sb of this.all) if (sb.id === id && !sb.closed) return sb;
    throw new MsnError(0, `no open conversation ${id}`);
  }

  async inviteToConversation(id: string, email: string): Promise<void> {
    const sb = this.conversation(id);
    sb.multiParty = true;
    await sb.invite(email);
    await sb.waitForJoin(email, this.core.timeouts.join);
  }

  async sendToConversation(id: string, text: string, format: TextFormat = DEFAULT_FORMAT): Promise<void> {
    const sb = this.conversation(id);
    for (const part of splitText(text, format)) await sb.send(buildTextMessage(part, format), 'A');
  }

  async sendTypingToConversation(id: string): Promise<void> {
    await this.conversation(id).send(buildTypingMessage(this.core.email), 'U');
  }

  async leaveConversation(id: string): Promise<void> {
    const sb = this.conversation(id);
    sb.close();
    await withDeadline(sb.whenClosed(), 2000).catch(() => undefined);
  }
}
