// The durability barrier of one client stream: nothing is written to the
// client while storage work caused by its earlier stanzas is still pending.
//
// Why: a client takes any later reply on the stream (a ping result, say) as
// proof that what it sent before was taken care of. If a message to an
// offline user were still on its way to the database when that reply went
// out, a crash would lose a message the client believes delivered.
//
// How: the session hands each inbound stanza in with `run()`, which numbers
// it and runs its handling in an inbound context (stream/inbound-context.ts).
// Every storage operation started in that context, directly or in its async
// continuations, calls `trackDurable()` (the storage seam does it for every
// backend, see tracked-backend.ts; KeyedMutex does it for the wait for its
// turn), which registers the operation against that stanza's number. Output
// to the session goes through `output()`: delivered at once when nothing is
// pending (the hot path: one length check), otherwise held, tagged with the
// number of the latest stanza received, and released in order once no work
// of that or an earlier stanza is pending.
//
// Work is counted per stanza, not per moment: a write that starts after an
// earlier read of the same stanza settled (read-modify-write, a mutex turn)
// still belongs to that stanza. Release is decided after the microtasks of
// a settling operation have run (setImmediate), so such a follow-up write is
// registered before the check sees the stanza idle. Work that waits on
// something other than storage (the network, an image library) between two
// storage steps is covered by returning its promise to `trackDurable()`.
//
// XEP-0198 (stream management) builds on the same numbers: `received` counts
// the stanzas handed in, `durableThrough` is the last one whose effects (and
// all earlier ones') are durable, and `whenDurable()` waits for that.
import { currentInbound, detached, type InboundStream, runInbound } from '../stream/inbound-context.ts';

interface WorkEntry {
  seq: number;
  /** Operations still pending; an entry at 0 stays until the next check. */
  n: number;
}

export class DurabilityBarrier<T = unknown> {
  private receivedCount = 0;
  /** Outstanding work per stanza number, oldest first. */
  private readonly work: WorkEntry[] = [];
  private held: Array<{ item: T; upTo: number }> = [];
  private durableWaiters: Array<{ upTo: number; resolve: () => void }> = [];
  private sentWaiters: Array<{ upTo: number; resolve: (sent: boolean) => void }> = [];
  private queuedCount = 0;
  private deliveredCount = 0;
  private scheduled = false;
  private ended = false;

  constructor(private readonly deliver: (item: T) => void) {}

  /** Stanzas handed in with `run()` so far (the number of the latest). */
  get received(): number {
    return this.receivedCount;
  }

  /** The last stanza number whose effects, and all earlier ones', are durable. */
  get durableThrough(): number {
    return this.work.length ? this.work[0]!.seq - 1 : this.receivedCount;
  }

  /** Output items waiting for earlier work (for status and tests). */
  get heldCount(): number {
    return this.held.length;
  }

  /** Handles one inbound stanza of `stream`: numbers it and runs `fn` in its context. */
  run<R>(stream: InboundStream, fn: () => R): R {
    const seq = ++this.receivedCount;
    return runInbound({ stream, barrier: this as DurabilityBarrier<unknown>, seq }, fn);
  }

  /** Registers pending work of stanza `seq`. */
  register(seq: number, work: PromiseLike<unknown>): void {
    if (this.ended) return;
    let entry: WorkEntry | undefined;
    for (let i = this.work.length - 1; i >= 0; i--) {
      const e = this.work[i]!;
      if (e.seq === seq) {
        entry = e;
        break;
      }
      if (e.seq < seq) {
        entry = { seq, n: 0 };
        this.work.splice(i + 1, 0, entry);
        break;
      }
    }
    if (!entry) {
      entry = { seq, n: 0 };
      this.work.unshift(entry);
    }
    entry.n++;
    // Consecutive registrations of one promise (a group-committed write that
    // carries many stanzas' appends) share one reaction: one callback per
    // batch instead of one per stanza.
    if (work !== this.lastWork) {
      const waiting: WorkEntry[] = [];
      this.lastWork = work;
      this.lastWaiting = waiting;
      const settle = () => {
        if (this.lastWork === work) this.lastWork = null;
        for (const e of waiting) if (--e.n === 0) this.schedule();
      };
      work.then(settle, settle);
    }
    this.lastWaiting.push(entry);
  }
  /** The promise registered last and the entries waiting on it. */
  private lastWork: PromiseLike<unknown> | null = null;
  private lastWaiting: WorkEntry[] = [];

  /** Sends `item` now if nothing is pending, else once earlier stanzas' work is durable. */
  output(item: T): void {
    if (this.ended) return;
    this.queuedCount++;
    if (this.work.length === 0 && this.held.length === 0) {
      this.deliveredCount++;
      this.deliver(item);
      return;
    }
    this.held.push({ item, upTo: this.receivedCount });
  }

  /** Resolves once the effects of every stanza received so far are durable. */
  whenDurable(): Promise<void> {
    if (this.work.length === 0 || this.ended) return Promise.resolve();
    return new Promise((resolve) => this.durableWaiters.push({ upTo: this.receivedCount, resolve }));
  }

  /**
   * Resolves true once everything output so far has been handed to the
   * transport, false if the stream ended first (held output is dropped).
   */
  whenSent(): Promise<boolean> {
    if (this.ended) return Promise.resolve(false);
    if (this.deliveredCount >= this.queuedCount) return Promise.resolve(true);
    return new Promise((resolve) => this.sentWaiters.push({ upTo: this.queuedCount, resolve }));
  }

  /**
   * Held output, taken out without being delivered (a session moving to
   * another cluster node takes it along instead of dropping it at `end`).
   */
  takeHeld(): T[] {
    const items = this.held.map((h) => h.item);
    this.held = [];
    return items;
  }

  /** The stream is gone: held output is dropped, waiters are released. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.held = [];
    for (const w of this.sentWaiters) w.resolve(false);
    for (const w of this.durableWaiters) w.resolve();
    this.sentWaiters = [];
    this.durableWaiters = [];
    this.work.length = 0;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // After the microtasks of the settling work (its follow-up writes
    // register there), and outside any stanza's context.
    detached(() => setImmediate(this.check));
  }

  private readonly check = (): void => {
    this.scheduled = false;
    while (this.work.length && this.work[0]!.n === 0) this.work.shift();
    const firstPending = this.work.length ? this.work[0]!.seq : Number.POSITIVE_INFINITY;
    let released = 0;
    while (released < this.held.length && this.held[released]!.upTo < firstPending) released++;
    if (released) {
      const batch = this.held.splice(0, released);
      for (const { item } of batch) {
        if (this.ended) break;
        this.deliveredCount++;
        this.deliver(item);
      }
    }
    if (this.durableWaiters.length) {
      const still = [];
      for (const w of this.durableWaiters) {
        if (w.upTo < firstPending) w.resolve();
        else still.push(w);
      }
      this.durableWaiters = still;
    }
    if (this.sentWaiters.length) {
      const still = [];
      for (const w of this.sentWaiters) {
        if (this.deliveredCount >= w.upTo) w.resolve(true);
        else still.push(w);
      }
      this.sentWaiters = still;
    }
  };
}

/**
 * Registers `work` (a storage operation, or anything a stanza's effects
 * wait on) with the barrier of the client stanza being handled, if any.
 * Returns `work` unchanged.
 */
export function trackDurable<P extends PromiseLike<unknown>>(work: P): P {
  const ctx = currentInbound();
  if (ctx?.barrier) ctx.barrier.register(ctx.seq, work);
  return work;
}
