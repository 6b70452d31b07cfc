// Which inbound stream's stanza the server is working on right now, carried
// through async continuations with AsyncLocalStorage. Two mechanisms need
// it and share it:
//   - durability (storage/durability.ts): storage work started while
//     handling a client's stanza registers with that client's barrier, so
//     later output to the client waits until that work is durable;
//   - backpressure (stream/outbound-queue.ts): a session whose outbound
//     queue is full stops reading from the streams that feed it.
// The context is set around the handling of each stanza (c2s, s2s) and read
// where storage is touched or output is queued. Work that must not count as
// the stream's own (long-lived links, sessions on other networks, work that
// waits for the stream's output) runs `detached`.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { DurabilityBarrier } from '../storage/durability.ts';

/** A stream whose stanzas the server handles: it can be told to stop and resume reading. */
export interface InboundStream {
  /** Stops reading input (backpressure); idempotent. */
  pauseReading(): void;
  resumeReading(): void;
  /** Whether the stream has ended (a closed stream is never paused or waited for). */
  readonly closed: boolean;
}

export interface InboundContext {
  readonly stream: InboundStream;
  /** The client's barrier (c2s only): storage work registers with it. */
  readonly barrier: DurabilityBarrier | null;
  /** Which of the stream's stanzas this is (the barrier's numbering). */
  readonly seq: number;
}

// One instance for the process: it holds no state of its own (each context
// is created per stanza), so several servers in one process share it safely.
const als = new AsyncLocalStorage<InboundContext>();

/** Runs `fn` as the handling of one stanza from `stream`. */
export function runInbound<R>(ctx: InboundContext, fn: () => R): R {
  return als.run(ctx, fn);
}

/** The stanza being handled, or undefined outside any (timers, other networks). */
export function currentInbound(): InboundContext | undefined {
  return als.getStore();
}

/**
 * Runs `fn` outside any stanza's context: for work that outlives the stanza
 * (an s2s link, an MSN login, timers) or that waits for the stream's own
 * output to be sent (it would wait for itself).
 */
export function detached<R>(fn: () => R): R {
  return als.exit(fn);
}
