/**
 * File transfer over MSNP2P inside a switchboard (no direct connections).
 *
 * The sender INVITEs with the file transfer application's EUF-GUID, AppID 2
 * and a Context describing the file (size, UTF-16 name); the receiver
 * answers 200 OK or 603 Decline. Clients that would rather connect
 * directly then INVITE with a transport request, which we answer with
 * "Listening: false" so the data stays in the switchboard. The data is one
 * P2P message (flags 0x01000030, footer 2) in chunks, acknowledged once
 * complete; the receiver then says BYE. Sizes are bounded on both sides.
 */
import { randomInt } from 'node:crypto';
import { MsnError, MsnProtocolError, MsnTimeoutError } from './errors.ts';
import type { P2PHeader } from './p2p.ts';
import { buildSlp, newGuid, SLP_SESSION_CLOSE, SLP_SESSION_REQ, type SlpMessage, slpAddress, slpBranch } from './slp.ts';
import type { Switchboard } from './switchboard.ts';

export const EUF_GUID_FILE = '{5D3E02AB-6190-11D3-BBBB-00C04F795683}';
export const P2P_APP_FILE = 2;
/** P2P flags of file data chunks. */
export const P2P_FILE_DATA = 0x01000030;
const SLP_TRANS_REQ = 'application/x-msnmsgr-transreqbody';
const SLP_TRANS_RESP = 'application/x-msnmsgr-transrespbody';

/** The Context of a file invitation: 638 bytes, then an optional preview. */
const CONTEXT_SIZE = 638;
const NAME_BYTES = 520;

export function buildFileContext(name: string, size: number): Buffer {
  const b = Buffer.alloc(CONTEXT_SIZE);
  b.writeUInt32LE(CONTEXT_SIZE, 0); // header length
  b.writeUInt32LE(3, 4); // version
  b.writeBigUInt64LE(BigInt(size), 8);
  b.writeUInt32LE(1, 16); // type: no preview
  const encoded = Buffer.from(name, 'utf16le').subarray(0, NAME_BYTES - 2);
  encoded.copy(b, 20);
  b.writeUInt32LE(0xffffffff, 20 + NAME_BYTES + 30);
  return b;
}

export function parseFileContext(b: Buffer): { name: string; size: number } | undefined {
  if (b.length < 20 + NAME_BYTES) return undefined;
  const size = Number(b.readBigUInt64LE(8));
  const raw = b.subarray(20, 20 + NAME_BYTES);
  let end = 0;
  while (end + 1 < raw.length && (raw[end] !== 0 || raw[end + 1] !== 0)) end += 2;
  const name = raw.subarray(0, end).toString('utf16le').trim();
  if (!Number.isSafeInteger(size) || size < 0) return undefined;
  return { name: name || 'file', size };
}

/** What the switchboard P2P layer lends the file transfers. */
export interface P2PLink {
  readonly myEmail: string;
  sendMessage(sb: Switchboard, to: string, sessionId: number, data: Buffer, flags: number, footer: number): Promise<number>;
  sendAck(sb: Switchboard, to: string, received: P2PHeader): Promise<void>;
}

/** A file someone offers us. Answer with accept() or decline(); unanswered offers are declined when they time out. */
export interface FileOffer {
  from: string;
  name: string;
  size: number;
  /** Accepts and resolves with the bytes; rejects if the transfer fails, is larger than `maxBytes`, or times out. */
  accept(maxBytes?: number): Promise<Buffer>;
  decline(): void;
}

interface Receiving {
  peer: string;
  sb: Switchboard;
  sessionId: number;
  callId: string;
  buf: Buffer;
  received: number;
  resolve: (data: Buffer) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

interface Sending {
  peer: string;
  sb: Switchboard;
  sessionId: number;
  callId: string;
  data: Buffer;
  /** The data message's identifier once sent: its ack ends the transfer. */
  dataId: number;
  resolve: (outcome: 'accepted' | 'declined') => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class FileTransfers {
  private readonly receiving = new Map<number, Receiving>();
  private readonly sending = new Map<number, Sending>();

  constructor(
    private readonly link: P2PLink,
    private readonly timeout: number,
    private readonly onOffer: ((offer: FileOffer) => void) | undefined,
  ) {}

  private slp(to: string, startLine: string, callId: string, branch: string, contentType: string, fields: [string, string | number][], cseq = 1): Buffer {
    return buildSlp({ startLine, to, from: this.link.myEmail, branch, cseq, callId, contentType, fields });
  }

  // ---------------------------------------------------------------- receiving

  /** An INVITE for the file application, or for a transport under a file session; false if it is neither. */
  onInvite(sb: Switchboard, from: string, slp: SlpMessage): boolean {
    const callId = slp.headers.get('call-id') ?? newGuid();
    const branch = slpBranch(slp.headers.get('via'));
    const to = slpAddress(slp.headers.get('from')) || from;
    const contentType = slp.headers.get('content-type') ?? '';
    if (contentType.startsWith(SLP_TRANS_REQ)) {
      // A direct connection is offered: we do not listen, so the data comes through the switchboard.
      const known = [...this.receiving.values(), ...this.sending.values()].some((t) => t.callId === callId);
      if (!known) return false;
      const nonce = '{00000000-0000-0000-0000-000000000000}';
      const body: [string, string][] = [
        ['Bridge', 'TCPv1'],
        ['Listening', 'false'],
        ['Nonce', nonce],
      ];
      void this.link
        .sendMessage(sb, from, 0, this.slp(to, 'MSNSLP/1.0 200 OK', callId, branch, SLP_TRANS_RESP, body), 0, 0)
        .catch(() => undefined);
      return true;
    }
    if (slp.body.get('euf-guid')?.toUpperCase() !== EUF_GUID_FILE) return false;
    const sessionId = Number(slp.body.get('sessionid'));
    const context = parseFileContext(Buffer.from(slp.body.get('context') ?? '', 'base64'));
    const answer = (status: string) =>
      this.link
        .sendMessage(sb, from, 0, this.slp(to, `MSNSLP/1.0 ${status}`, callId, branch, SLP_SESSION_REQ, [['SessionID', sessionId || 0]]), 0, 0)
        .catch(() => undefined);
    if (!context || !Number.isInteger(sessionId) || sessionId <= 0 || !this.onOffer) {
      void answer('603 Decline');
      return true;
    }
    let answered = false;
    const offerTimer = setTimeout(() => {
      if (answered) return;
      answered = true;
      void answer('603 Decline');
    }, this.timeout);
    this.onOffer({
      from,
      name: context.name,
      size: context.size,
      accept: (maxBytes = Number.POSITIVE_INFINITY) => {
        if (answered) return Promise.reject(new MsnError(0, 'the file offer was already answered'));
        answered = true;
        clearTimeout(offerTimer);
        if (context.size > maxBytes) {
          void answer('603 Decline');
          return Promise.reject(new MsnError(0, `the file is larger than ${maxBytes} bytes`));
        }
        return new Promise<Buffer>((resolve, reject) => {
          const r: Receiving = {
            peer: from,
            sb,
            sessionId,
            callId,
            buf: Buffer.alloc(context.size),
            received: 0,
            resolve,
            reject,
            timer: setTimeout(() => this.failReceive(r, new MsnTimeoutError(`file from ${from}`)), this.timeout),
          };
          this.receiving.set(sessionId, r);
          void answer('200 OK');
          if (context.size === 0) this.completeReceive(r);
        });
      },
      decline: () => {
        if (answered) return;
        answered = true;
        clearTimeout(offerTimer);
        void answer('603 Decline');
      },
    });
    return true;
  }

  /** A data chunk of a session we receive; false if the session is not ours. */
  onData(from: string, h: P2PHeader, data: Buffer): boolean {
    const r = this.receiving.get(h.sessionId);
    if (!r || r.peer !== from) return false;
    if (h.totalSize !== r.buf.length || h.offset + data.length > r.buf.length) {
      this.failReceive(r, new MsnProtocolError(`${from} sent more than the ${r.buf.length} bytes announced`));
      return true;
    }
    data.copy(r.buf, h.offset);
    r.received += data.length;
    if (r.received >= r.buf.length) {
      void this.link.sendAck(r.sb, r.peer, h);
      this.completeReceive(r);
    }
    return true;
  }

  private completeReceive(r: Receiving): void {
    this.receiving.delete(r.sessionId);
    clearTimeout(r.timer);
    r.resolve(r.buf);
    const bye = this.slp(r.peer, `BYE MSNMSGR:${r.peer} MSNSLP/1.0`, r.callId, newGuid(), SLP_SESSION_CLOSE, [], 0);
    void this.link.sendMessage(r.sb, r.peer, 0, bye, 0, 0).catch(() => undefined);
  }

  private failReceive(r: Receiving, err: Error): void {
    if (this.receiving.get(r.sessionId) !== r) return;
    this.receiving.delete(r.sessionId);
    clearTimeout(r.timer);
    r.reject(err);
  }

  // ---------------------------------------------------------------- sending

  /** Offers `data` as file `name`; resolves 'accepted' once the peer acknowledged every byte, or 'declined'. */
  send(sb: Switchboard, to: string, name: string, data: Buffer): Promise<'accepted' | 'declined'> {
    const sessionId = randomInt(1, 0x7fffffff);
    const callId = newGuid();
    return new Promise((resolve, reject) => {
      const s: Sending = {
        peer: to,
        sb,
        sessionId,
        callId,
        data,
        dataId: 0,
        resolve,
        reject,
        timer: setTimeout(() => this.endSend(s, new MsnTimeoutError(`file to ${to}`)), this.timeout),
      };
      this.sending.set(sessionId, s);
      const invite = this.slp(to, `INVITE MSNMSGR:${to} MSNSLP/1.0`, callId, newGuid(), SLP_SESSION_REQ, [
        ['EUF-GUID', EUF_GUID_FILE],
        ['SessionID', sessionId],
        ['SChannelState', 0],
        ['Capabilities-Flags', 1],
        ['AppID', P2P_APP_FILE],
        ['Context', buildFileContext(name, data.length).toString('base64')],
      ], 0);
      this.link.sendMessage(sb, to, 0, invite, 0, 0).catch((err: Error) => this.endSend(s, err));
    });
  }

  /** A response to one of our invitations; false if it is not about a file we send. */
  onResponse(slp: SlpMessage): boolean {
    const callId = slp.headers.get('call-id');
    const s = [...this.sending.values()].find((x) => x.callId === callId);
    if (!s || slp.status === undefined) return false;
    if ((slp.headers.get('content-type') ?? '').startsWith(SLP_TRANS_RESP)) return true;
    if (slp.status !== 200) {
      this.endSend(s, undefined, 'declined');
      return true;
    }
    if (s.dataId !== 0) return true;
    this.link
      .sendMessage(s.sb, s.peer, s.sessionId, s.data, P2P_FILE_DATA, P2P_APP_FILE)
      .then((id) => {
        s.dataId = id;
        if (s.data.length === 0) this.endSend(s, undefined, 'accepted');
      })
      .catch((err: Error) => this.endSend(s, err));
    return true;
  }

  /** An ack: the end of a file we sent when it acknowledges the data message. */
  onAck(h: P2PHeader): boolean {
    for (const s of this.sending.values()) {
      if (s.dataId !== 0 && h.ackIdentifier === s.dataId) {
        this.endSend(s, undefined, 'accepted');
        return true;
      }
    }
    return false;
  }

  /** BYE for a session: a receiver that closes before the end means it refused the rest. */
  onBye(slp: SlpMessage): void {
    const callId = slp.headers.get('call-id');
    for (const s of this.sending.values()) {
      if (s.callId === callId && s.dataId === 0) this.endSend(s, undefined, 'declined');
    }
    for (const r of this.receiving.values()) {
      if (r.callId === callId) this.failReceive(r, new MsnProtocolError(`${r.peer} cancelled the file transfer`));
    }
  }

  private endSend(s: Sending, err?: Error, outcome?: 'accepted' | 'declined'): void {
    if (this.sending.get(s.sessionId) !== s) return;
    this.sending.delete(s.sessionId);
    clearTimeout(s.timer);
    if (err) s.reject(err);
    else s.resolve(outcome ?? 'declined');
  }

  switchboardClosed(sb: Switchboard): void {
    for (const s of [...this.sending.values()]) if (s.sb === sb) this.endSend(s, new MsnProtocolError(`switchboard closed during the file transfer to ${s.peer}`));
    for (const r of [...this.receiving.values()]) if (r.sb === sb) this.failReceive(r, new MsnProtocolError(`switchboard closed during the file transfer from ${r.peer}`));
  }

  shutdown(): void {
    for (const s of [...this.sending.values()]) this.endSend(s, new MsnProtocolError('session closed'));
    for (const r of [...this.receiving.values()]) this.failReceive(r, new MsnProtocolError('session closed'));
  }
}
