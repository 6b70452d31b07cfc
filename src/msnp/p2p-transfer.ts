/**
 * Display-picture transfers over P2P/MSNSLP inside a switchboard.
 *
 * Both roles are implemented because both ends of a test (and of real use)
 * are this library:
 *  - requester (fetch): INVITE → (ack) → 200 OK → ack → data preparation →
 *    ack → data chunks → ack → BYE;
 *  - owner (answering an INVITE for our own picture): ack → 200 OK → wait
 *    for its ack → data preparation → wait for its ack → data chunks.
 * Every complete non-ack message is acknowledged, as official clients refuse
 * transfers otherwise. Each transfer has a deadline.
 */
import { randomInt } from 'node:crypto';
import { MsnProtocolError, MsnTimeoutError } from './errors.ts';
import { buildMime } from './mime.ts';
import { type MsnObject, parseMsnObject, serializeMsnObject, verifyData } from './msnobject.ts';
import {
  buildAckHeader,
  decodeP2PPacket,
  emptyHeader,
  encodeP2PPacket,
  P2P_APP_DISPLAY_PICTURE,
  P2P_APP_SLP,
  P2P_FLAGS,
  P2P_MAX_CHUNK,
  type P2PHeader,
} from './p2p.ts';
import {
  buildSlp,
  EUF_GUID_DISPLAY_PICTURE,
  newGuid,
  parseSlp,
  SLP_SESSION_CLOSE,
  SLP_SESSION_REQ,
  type SlpMessage,
  slpAddress,
  slpBranch,
} from './slp.ts';
import { type FileOffer, FileTransfers } from './file-transfer.ts';
import type { Switchboard } from './switchboard.ts';

/** Refuse to buffer P2P messages larger than this (a display picture is a few KB). */
const MAX_P2P_MESSAGE = 8 * 1024 * 1024;

export interface OwnAvatar {
  object: MsnObject;
  data: Buffer;
}

interface Fetch {
  peer: string;
  sb: Switchboard;
  sessionId: number;
  callId: string;
  object: MsnObject;
  resolve: (data: Buffer) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

interface Serve {
  peer: string;
  sb: Switchboard;
  sessionId: number;
  callId: string;
  data: Buffer;
  /** Identifier whose ack moves us to the next step. */
  waitingFor: number;
  step: 'ok-sent' | 'prep-sent' | 'data-sent';
  timer: NodeJS.Timeout;
}

interface PartialMessage {
  buf: Buffer;
  received: number;
}

export class P2PManager {
  readonly myEmail: string;
  /** File transfers (MSNP2P AppID 2) on the same switchboards. */
  readonly files: FileTransfers;
  private readonly getAvatar: () => OwnAvatar | undefined;
  private readonly timeout: number;
  private nextId = randomInt(1000, 0x7fff0000);
  private readonly partials = new Map<string, PartialMessage>();
  private readonly fetches = new Map<number, Fetch>();
  private readonly serves = new Map<number, Serve>();

  constructor(opts: {
    myEmail: string;
    getAvatar: () => OwnAvatar | undefined;
    timeout: number;
    fileTimeout?: number;
    onFileOffer?: (offer: FileOffer) => void;
  }) {
    this.myEmail = opts.myEmail.toLowerCase();
    this.getAvatar = opts.getAvatar;
    this.timeout = opts.timeout;
    this.files = new FileTransfers(this, opts.fileTimeout ?? opts.timeout, opts.onFileOffer);
  }

  /** Requests `peer`'s picture described by `object` over `sb`; resolves with data whose SHA1D matched. */
  fetch(sb: Switchboard, peer: string, object: MsnObject): Promise<Buffer> {
    const sessionId = randomInt(1, 0x7fffffff);
    const callId = newGuid();
    return new Promise<Buffer>((resolve, reject) => {
      const f: Fetch = {
        peer: peer.toLowerCase(),
        sb,
        sessionId,
        callId,
        object,
        resolve,
        reject,
        timer: setTimeout(
          () => this.failFetch(f, new MsnTimeoutError(`display picture from ${peer}`)),
          this.timeout,
        ),
      };
      this.fetches.set(sessionId, f);
      const context = Buffer.from(`${serializeMsnObject(object)}\0`, 'utf8').toString('base64');
      const invite = buildSlp({
        startLine: `INVITE MSNMSGR:${peer} MSNSLP/1.0`,
        to: peer,
        from: this.myEmail,
        branch: newGuid(),
        cseq: 0,
        callId,
        contentType: SLP_SESSION_REQ,
        fields: [
          ['EUF-GUID', EUF_GUID_DISPLAY_PICTURE],
          ['SessionID', sessionId],
          ['AppID', P2P_APP_DISPLAY_PICTURE],
          ['Context', context],
        ],
      });
      this.sendMessage(sb, peer, 0, invite, P2P_FLAGS.NONE, P2P_APP_SLP).catch((err: Error) =>
        this.failFetch(f, err),
      );
    });
  }

  /** Fails transfers riding on a switchboard that just closed. */
  switchboardClosed(sb: Switchboard): void {
    for (const f of [...this.fetches.values()]) {
      if (f.sb === sb)
        this.failFetch(f, new MsnProtocolError(`switchboard closed during transfer from ${f.peer}`));
    }
    for (const s of [...this.serves.values()]) if (s.sb === sb) this.endServe(s);
    this.files.switchboardClosed(sb);
  }

  /** Cancels everything (logout). */
  shutdown(): void {
    this.files.shutdown();
    for (const f of [...this.fetches.values()]) this.failFetch(f, new MsnProtocolError('session closed'));
    for (const s of [...this.serves.values()]) this.endServe(s);
    this.partials.clear();
  }

  /** Entry point for every application/x-msnmsgrp2p MSG addressed to us. */
  handle(sb: Switchboard, from: string, body: Buffer): void {
    let packet: ReturnType<typeof decodeP2PPacket>;
    try {
      packet = decodeP2PPacket(body);
    } catch {
      return; // malformed: nothing sensible to ack
    }
    const { header, data, footer } = packet;
    if (header.flags & P2P_FLAGS.ACK) {
      if (!this.files.onAck(header)) this.onAck(header);
      return;
    }
    // File data goes straight into its transfer's buffer (it acknowledges the whole at the end).
    if (header.sessionId !== 0 && this.files.onData(from, header, data)) return;
    const whole = this.reassemble(from, header, data);
    if (!whole) return;
    void this.sendAck(sb, from, header);
    if (header.sessionId === 0) {
      const slp = parseSlp(whole);
      if (slp) this.onSlp(sb, from, slp);
      return;
    }
    const f = this.fetches.get(header.sessionId);
    if (!f) return;
    const isData =
      (header.flags & P2P_FLAGS.DATA) !== 0 || (footer === P2P_APP_DISPLAY_PICTURE && whole.length > 4);
    if (!isData) return; // data preparation message: the ack above is all it needs
    this.completeFetch(f, whole);
  }

  private reassemble(from: string, h: P2PHeader, data: Buffer): Buffer | undefined {
    if (h.totalSize <= data.length && h.offset === 0) return data;
    if (h.totalSize > MAX_P2P_MESSAGE) return undefined;
    const key = `${from}/${h.sessionId}/${h.identifier}`;
    let p: PartialMessage | undefined = this.partials.get(key);
    if (!p) {
      p = { buf: Buffer.alloc(h.totalSize), received: 0 };
      this.partials.set(key, p);
    }
    if (h.offset + data.length > p.buf.length) {
      this.partials.delete(key);
      return undefined;
    }
    data.copy(p.buf, h.offset);
    p.received += data.length;
    if (p.received < p.buf.length) return undefined;
    this.partials.delete(key);
    return p.buf;
  }

  private onSlp(sb: Switchboard, from: string, slp: SlpMessage): void {
    if (slp.method === 'INVITE') {
      if (!this.files.onInvite(sb, from, slp)) this.onInvite(sb, from, slp);
      return;
    }
    const callId = slp.headers.get('call-id');
    if (slp.method === 'BYE') {
      this.files.onBye(slp);
      for (const s of this.serves.values()) if (s.callId === callId) this.endServe(s);
      return;
    }
    if (slp.status !== undefined) {
      if (this.files.onResponse(slp)) return;
      const f = [...this.fetches.values()].find((x) => x.callId === callId);
      if (f && slp.status !== 200) {
        this.failFetch(
          f,
          new MsnProtocolError(
            `${from} answered the picture request with ${slp.status} ${slp.statusText ?? ''}`.trim(),
          ),
        );
      }
    }
  }

  private onInvite(sb: Switchboard, from: string, slp: SlpMessage): void {
    const callId = slp.headers.get('call-id') ?? newGuid();
    const branch = slpBranch(slp.headers.get('via'));
    const sessionId = Number(slp.body.get('sessionid'));
    const respond = (status: string, fields: [string, string | number][]) =>
      buildSlp({
        startLine: `MSNSLP/1.0 ${status}`,
        to: slpAddress(slp.headers.get('from')) || from,
        from: this.myEmail,
        branch,
        cseq: 1,
        callId,
        contentType: SLP_SESSION_REQ,
        fields,
      });
    const avatar = this.getAvatar();
    const wanted = parseMsnObject(
      Buffer.from(slp.body.get('context') ?? '', 'base64')
        .toString('utf8')
        .replace(/\0+$/, ''),
    );
    const acceptable =
      slp.body.get('euf-guid')?.toUpperCase() === EUF_GUID_DISPLAY_PICTURE &&
      Number.isFinite(sessionId) &&
      sessionId > 0 &&
      avatar !== undefined &&
      (wanted === undefined || wanted.sha1d === avatar.object.sha1d);
    if (!acceptable || !avatar) {
      void this.sendMessage(
        sb,
        from,
        0,
        respond('603 Decline', [['SessionID', Number.isFinite(sessionId) ? sessionId : 0]]),
        0,
        P2P_APP_SLP,
      );
      return;
    }
    const s: Serve = {
      peer: from,
      sb,
      sessionId,
      callId,
      data: avatar.data,
      waitingFor: 0,
      step: 'ok-sent',
      timer: setTimeout(() => this.endServe(s), this.timeout),
    };
    this.serves.set(sessionId, s);
    this.sendMessage(sb, from, 0, respond('200 OK', [['SessionID', sessionId]]), 0, P2P_APP_SLP)
      .then((id) => {
        s.waitingFor = id;
      })
      .catch(() => this.endServe(s));
  }

  private onAck(h: P2PHeader): void {
    for (const s of this.serves.values()) {
      if (s.waitingFor === 0 || h.ackIdentifier !== s.waitingFor) continue;
      if (s.step === 'ok-sent') {
        s.step = 'prep-sent';
        s.waitingFor = 0;
        this.sendMessage(s.sb, s.peer, s.sessionId, Buffer.alloc(4), P2P_FLAGS.NONE, P2P_APP_DISPLAY_PICTURE)
          .then((id) => {
            s.waitingFor = id;
          })
          .catch(() => this.endServe(s));
      } else if (s.step === 'prep-sent') {
        s.step = 'data-sent';
        s.waitingFor = 0;
        this.sendMessage(s.sb, s.peer, s.sessionId, s.data, P2P_FLAGS.DATA, P2P_APP_DISPLAY_PICTURE)
          .then((id) => {
            s.waitingFor = id;
          })
          .catch(() => this.endServe(s));
      } else {
        // Data acknowledged; keep the entry until BYE (or the deadline) to ack it.
        s.waitingFor = 0;
      }
      return;
    }
  }

  private completeFetch(f: Fetch, data: Buffer): void {
    this.fetches.delete(f.sessionId);
    clearTimeout(f.timer);
    if (!verifyData(f.object, data)) {
      f.reject(new MsnProtocolError(`display picture from ${f.peer} does not match its SHA1D`));
    } else {
      f.resolve(data);
    }
    const bye = buildSlp({
      startLine: `BYE MSNMSGR:${f.peer} MSNSLP/1.0`,
      to: f.peer,
      from: this.myEmail,
      branch: newGuid(),
      cseq: 0,
      callId: f.callId,
      contentType: SLP_SESSION_CLOSE,
      fields: [],
    });
    void this.sendMessage(f.sb, f.peer, 0, bye, P2P_FLAGS.NONE, P2P_APP_SLP).catch(() => undefined);
  }

  private failFetch(f: Fetch, err: Error): void {
    if (this.fetches.get(f.sessionId) !== f) return;
    this.fetches.delete(f.sessionId);
    clearTimeout(f.timer);
    f.reject(err);
  }

  private endServe(s: Serve): void {
    clearTimeout(s.timer);
    if (this.serves.get(s.sessionId) === s) this.serves.delete(s.sessionId);
  }

  async sendAck(sb: Switchboard, to: string, received: P2PHeader): Promise<void> {
    const header = buildAckHeader(received, this.nextId++);
    await this.transmit(sb, to, encodeP2PPacket({ header, data: Buffer.alloc(0), footer: 0 })).catch(
      () => undefined,
    );
  }

  /** Sends one P2P message, split into chunks sharing an identifier; resolves with that identifier. */
  async sendMessage(
    sb: Switchboard,
    to: string,
    sessionId: number,
    data: Buffer,
    flags: number,
    footer: number,
  ): Promise<number> {
    const identifier = this.nextId++;
    const ackIdentifier = randomInt(1, 0x7fffffff);
    let offset = 0;
    do {
      const chunk = data.subarray(offset, offset + P2P_MAX_CHUNK);
      const header: P2PHeader = {
        ...emptyHeader(),
        sessionId,
        identifier,
        offset,
        totalSize: data.length,
        length: chunk.length,
        flags,
        ackIdentifier,
      };
      await this.transmit(sb, to, encodeP2PPacket({ header, data: chunk, footer }));
      offset += chunk.length;
    } while (offset < data.length);
    return identifier;
  }

  private transmit(sb: Switchboard, to: string, packet: Buffer): Promise<void> {
    const payload = buildMime(
      [
        ['MIME-Version', '1.0'],
        ['Content-Type', 'application/x-msnmsgrp2p'],
        ['P2P-Dest', to],
      ],
      packet,
    );
    return sb.send(payload, 'D');
  }
}
