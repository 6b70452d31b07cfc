// What the server does about a client that does not read what it is sent
// (a slow link, a stalled app, an attacker that opens a window of zero):
// the bytes waiting for its socket are bounded.
//
// The policy, after every write to the client:
//   1. Over `limits.outboundQueueSize` (1 MiB) the session is congested:
//      the stream whose stanza is being handled when more output for it
//      arrives — the sender feeding it (another client, an s2s link, or the
//      client itself asking for more) — stops being read until the
//      congested session has written everything out. Senders slow down to
//      the reader's pace instead of filling the server's memory.
//   2. A session congested for `limits.slowConsumerTimeout` (30 s), or
//      with more than `limits.outboundQueueMaxSize` (8 MiB) waiting (output
//      no sender can be paused for: offline delivery, the transport), is
//      closed with a policy-violation stream error, sent after what is
//      queued; a connection still unread after the 5 s close grace is
//      dropped with its queue (with stream management, what it never
//      acknowledged is handed back for delivery elsewhere or bounced). Its
//      senders are read again.
// Prosody and ejabberd bound the same thing (ejabberd's max_fsm_queue).
import { currentInbound, type InboundStream } from '../stream/inbound-context.ts';
import type { Framing } from '../stream/framing.ts';

export interface SlowConsumerLimits {
  /** Bytes waiting to be written above which feeding senders are paused. */
  queueSize: number;
  /** Bytes waiting above which the session is closed at once. */
  maxQueueSize: number;
  /** How long a session may stay over `queueSize`, in ms. */
  timeoutMs: number;
}

export class SlowConsumerGuard {
  private readonly paused = new Set<InboundStream>();
  private timer: NodeJS.Timeout | null = null;
  private waitingForDrain = false;
  private done = false;

  constructor(
    /** The session's current transport (stream management may swap it). */
    private readonly framing: () => Framing | null,
    private readonly limits: SlowConsumerLimits,
    /** Ends the session: it is too slow. */
    private readonly tooSlow: (why: string) => void,
  ) {}

  /** Whether output is piling up (senders feeding this session are paused). */
  get congested(): boolean {
    return this.timer !== null;
  }

  /** Call after writing to the client. */
  afterWrite(): void {
    if (this.done) return;
    const framing = this.framing();
    if (!framing) return;
    const unsent = framing.unsentBytes;
    if (unsent <= this.limits.queueSize) return;
    if (unsent > this.limits.maxQueueSize) {
      this.fail(`more than ${this.limits.maxQueueSize} bytes waiting: the client is not reading`);
      return;
    }
    if (!this.timer) {
      this.timer = setTimeout(
        () => this.fail(`over ${this.limits.queueSize} bytes waiting for ${this.limits.timeoutMs / 1000} s`),
        this.limits.timeoutMs,
      );
      this.timer.unref();
    }
    const feeder = currentInbound()?.stream;
    if (feeder && !feeder.closed && !this.paused.has(feeder)) {
      this.paused.add(feeder);
      feeder.pauseReading();
    }
    if (!this.waitingForDrain) {
      this.waitingForDrain = true;
      framing.onceDrained(this.drained);
    }
  }

  private readonly drained = (): void => {
    this.waitingForDrain = false;
    if (this.done) return;
    const framing = this.framing();
    // More was written meanwhile: wait for that too.
    if (framing && framing.unsentBytes > this.limits.queueSize) {
      this.waitingForDrain = true;
      framing.onceDrained(this.drained);
      return;
    }
    this.relieve();
  };

  /** The session is gone or caught up: its senders are read again. */
  relieve(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    // A drain callback still pending on a transport that is gone never comes.
    this.waitingForDrain = false;
    for (const feeder of this.paused) feeder.resumeReading();
    this.paused.clear();
  }

  /** The session ended: nothing more to watch. */
  stop(): void {
    this.done = true;
    this.relieve();
  }

  private fail(why: string): void {
    if (this.done) return;
    this.relieve();
    // The session drops its transport; with stream management it may be
    // resumed on a new one, which this guard then watches.
    this.tooSlow(why);
  }
}
