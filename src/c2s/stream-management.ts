// XEP-0198 Stream Management for client streams: acknowledgements and
// resumption. Counters are mod 2^32.
//
// Inbound: the session's durability barrier numbers every stanza the client
// sends (nonzas are not numbered), so `<a h/>` is the number of stanzas
// whose effects are durable since <enable/> — an ack means "stored", never
// just "read" (storage/durability.ts). The ack is queued in the barrier
// like any output and its count taken when it is written.
//
// Outbound: every stanza written to the client after <enabled/> is kept
// until the client acknowledges it. When the socket drops without a
// closing </stream:stream>, a resumable session hibernates: it stays bound
// and available, and what is sent to it queues here. A new connection that
// authenticates as the same user resumes it with <resume previd h/> (the
// old session takes over the new connection's transport, TCP or WebSocket,
// and resends what the client did not acknowledge). If nobody resumes it
// within sm.resumeTimeout, or when it ends otherwise, the stanzas still
// unacknowledged are not dropped: each fires `delivery/failure` on the
// user's host (modules/unacknowledged.ts stores or re-delivers messages and
// bounces iqs), and what no module takes is bounced.
//
// `enableStreamManagement` and `prepareResumption` are the entry points for
// stream negotiation elsewhere too (SASL2/Bind2 inline enable and resume).
import { randomBytes } from 'node:crypto';
import type { Jid } from '../jid/jid.ts';
import { type Element, el } from '../xml/element.ts';
import { NS } from '../xml/namespaces.ts';

const MOD = 2 ** 32;
/** An <r/> goes out when this many stanzas wait for an ack, or after REQUEST_AFTER_MS. */
const REQUEST_EVERY = 5;
const REQUEST_AFTER_MS = 1000;

/** What stream management needs of a client session (C2SSession implements it). */
export interface SmSession {
  readonly jid: Jid;
  readonly user: string | null;
  readonly hostName: string | null;
  readonly bound: boolean;
  readonly closed: boolean;
  /** Stanzas numbered by the durability barrier so far, and the last whose effects are durable. */
  readonly received: number;
  readonly durableThrough: number;
  whenDurable(): Promise<void>;
  /** Writes a nonza now (not counted, not held). */
  writeNonza(el: Element): void;
  /** Queues a nonza behind held output; `make` builds it when it is written. */
  queueNonza(make: () => Element): void;
  /** Writes a stanza to the transport if there is one (no counting). */
  writeStanza(el: Element): void;
  /** Ends the stream with an error (the session then ends for good). */
  close(error: 'undefined-condition' | 'resource-constraint' | 'conflict', text?: string, extra?: Element): void;
}

export interface SmLimits {
  resumeTimeout: number;
  maxUnacked: number;
  maxHibernatingPerUser: number;
}

/** Per-session stream management state, from <enable/> on. */
export class StreamManagement {
  /** Stanzas written to the client since <enabled/> and not yet acknowledged, oldest first. */
  readonly unacked: Element[] = [];
  /** Stanzas written since <enabled/> (mod 2^32), and the client's last h. */
  private sent = 0;
  private acked = 0;
  /** The barrier's count when SM was enabled: inbound h is counted from there. */
  private readonly inBase: number;
  private requestPending = false;
  private requestTimer: NodeJS.Timeout | null = null;
  private sinceRequest = 0;
  hibernatingSince: number | null = null;
  private expiry: NodeJS.Timeout | null = null;
  /**
   * A resumption took this session (it is moving to another cluster node):
   * no other resumption may have it, whatever still happens to it here.
   */
  claimed = false;

  constructor(
    private readonly session: SmSession,
    readonly id: string | null,
    readonly resumeTimeout: number,
    private readonly limits: SmLimits,
    /** Inbound stanzas already counted elsewhere (a session resumed from another node). */
    handledBefore = 0,
  ) {
    this.inBase = (session.received - handledBefore + MOD) % MOD;
  }

  /**
   * A session resumed from another cluster node: the counters go on from
   * where that node left them, and what the client has not acknowledged
   * waits to be resent (by `wake`).
   */
  static restore(
    session: SmSession,
    id: string,
    resumeTimeout: number,
    limits: SmLimits,
    state: { handled: number; sent: number; acked: number; unacked: Element[] },
  ): StreamManagement {
    const sm = new StreamManagement(session, id, resumeTimeout, limits, state.handled);
    sm.sent = state.sent;
    sm.acked = state.acked;
    sm.unacked.push(...state.unacked);
    return sm;
  }

  /** Outbound counters, for a session moving to another node. */
  get counters(): { sent: number; acked: number } {
    return { sent: this.sent, acked: this.acked };
  }

  get resumable(): boolean {
    return this.id !== null;
  }

  /** Inbound h: stanzas from the client whose effects are durable. */
  get handled(): number {
    return (this.session.durableThrough - this.inBase + MOD) % MOD;
  }

  /** A stanza is being written to the client (or would be, while hibernating). */
  onStanzaOut(stanza: Element): void {
    this.unacked.push(stanza);
    this.sent = (this.sent + 1) % MOD;
    if (this.unacked.length > this.limits.maxUnacked) {
      // A client that never acknowledges must not make the server keep everything.
      this.session.close('resource-constraint', `more than ${this.limits.maxUnacked} stanzas unacknowledged`);
      return;
    }
    if (this.hibernatingSince !== null) return;
    this.sinceRequest++;
    if (!this.requestPending && this.sinceRequest >= REQUEST_EVERY) this.requestAck();
    else if (!this.requestPending && !this.requestTimer) {
      this.requestTimer = setTimeout(() => {
        this.requestTimer = null;
        if (this.unacked.length && !this.requestPending && this.hibernatingSince === null) this.requestAck();
      }, REQUEST_AFTER_MS);
      this.requestTimer.unref();
    }
  }

  private requestAck(): void {
    this.requestPending = true;
    this.sinceRequest = 0;
    this.session.writeNonza(el('r', { xmlns: NS.sm }));
  }

  /** <r/>: answered with the durable count, once earlier output (and so earlier work) is out. */
  onRequest(): void {
    this.session.queueNonza(() => el('a', { xmlns: NS.sm, h: this.handled }));
  }

  /**
   * The client's h (from <a/> or <resume/>): drops what it acknowledged.
   * Returns false (and changes nothing) when it acknowledges more than was sent.
   */
  acknowledge(h: number): boolean {
    const count = (h - this.acked + MOD) % MOD;
    if (count > this.unacked.length) return false;
    this.unacked.splice(0, count);
    this.acked = h;
    this.requestPending = false;
    return true;
  }

  /** <a h/> from the client; a bad h ends the stream (XEP-0198 §4). */
  onAck(a: Element): void {
    const h = readH(a.attrs.h);
    if (h === null) {
      this.session.close('undefined-condition', "an <a/> needs a numeric 'h'");
      return;
    }
    if (!this.acknowledge(h)) this.session.close('undefined-condition', 'you acknowledged stanzas that were never sent', this.tooHigh(h));
  }

  tooHigh(h: number): Element {
    return el('handled-count-too-high', { xmlns: NS.sm, h, 'send-count': this.sent });
  }

  /** The transport is gone: keep the session for resumeTimeout seconds. */
  hibernate(onExpiry: () => void): void {
    this.hibernatingSince = Date.now();
    this.clearRequestTimer();
    this.expiry = setTimeout(onExpiry, this.resumeTimeout * 1000);
    this.expiry.unref();
  }

  /** A new transport took over: resend what the client did not get. */
  wake(): void {
    this.hibernatingSince = null;
    if (this.expiry) clearTimeout(this.expiry);
    this.expiry = null;
    this.requestPending = false;
    this.sinceRequest = 0;
    for (const s of this.unacked) this.session.writeStanza(s);
    if (this.unacked.length) this.requestAck();
  }

  /** Stops timers; returns what was never acknowledged. */
  finish(): Element[] {
    this.clearRequestTimer();
    if (this.expiry) clearTimeout(this.expiry);
    this.expiry = null;
    return this.unacked.splice(0);
  }

  private clearRequestTimer(): void {
    if (this.requestTimer) clearTimeout(this.requestTimer);
    this.requestTimer = null;
  }
}

/** Resumable sessions by SM-ID, for one server. */
export class ResumableSessions<S extends SmSession & { sm: StreamManagement | null }> {
  private readonly byId = new Map<string, S>();
  /** Storage work of sessions that ended with unacknowledged stanzas (awaited at shutdown). */
  private readonly pending = new Set<Promise<unknown>>();

  add(id: string, session: S): void {
    this.byId.set(id, session);
  }

  get(id: string): S | undefined {
    return this.byId.get(id);
  }

  delete(id: string, session: S): void {
    if (this.byId.get(id) === session) this.byId.delete(id);
  }

  /** The user's hibernating sessions, oldest first. */
  hibernating(user: string, host: string): S[] {
    return [...this.byId.values()]
      .filter((s) => s.user === user && s.hostName === host && s.sm?.hibernatingSince != null)
      .sort((a, b) => a.sm!.hibernatingSince! - b.sm!.hibernatingSince!);
  }

  track(work: Promise<unknown>): void {
    this.pending.add(work);
    void work.finally(() => this.pending.delete(work));
  }

  /** Resolves when the unacknowledged stanzas of ended sessions are stored or bounced. */
  async drain(): Promise<void> {
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }
}

/** A new SM-ID: random, never reused while the server runs. */
export function newSmId(): string {
  return randomBytes(18).toString('base64url');
}

/** 'h' as an unsignedInt, or null. */
export function readH(value: string | undefined): number | null {
  if (value === undefined || !/^\d{1,10}$/.test(value)) return null;
  const n = Number(value);
  return n < MOD ? n : null;
}

export function failed(condition: string, h?: number, extra?: Element): Element {
  return el('failed', { xmlns: NS.sm, h }, el(condition, { xmlns: NS.stanzas }), extra);
}
