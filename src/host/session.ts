// What the router and modules know about a connected, bound client session.
// TCP and WebSocket sessions both implement it (one stream state machine).
import type { Jid } from '../jid/jid.ts';
import type { Element } from '../xml/element.ts';
import type { StreamErrorName } from '../xml/errors.ts';

export interface ClientSession {
  readonly kind: 'c2s';
  readonly id: string;
  /** The full JID once bound. */
  readonly jid: Jid;
  readonly ip: string;
  readonly secure: boolean;
  readonly transport: 'tcp' | 'websocket';
  /** Last available presence sent by the client, null while unavailable. */
  presence: Element | null;
  priority: number;
  /** The client has asked for the roster (RFC 6121 §2.1.6 "interested resource"). */
  rosterRequested: boolean;
  /** Per-module state (carbons enabled, blocking list loaded, ...). */
  readonly data: Map<string, unknown>;
  /** Queues a stanza to the client (after the storage work of its earlier stanzas is durable). */
  send(stanza: Element): void;
  close(error?: StreamErrorName, text?: string): void;
  /** Resolves once the effects of every stanza received from the client so far are durable. */
  whenDurable(): Promise<void>;
  /** Resolves true once everything sent so far reached the transport, false if the stream ended first. */
  whenSent(): Promise<boolean>;
  /**
   * Resolves true once the client has read enough that less than
   * `limits.outboundQueueSize` waits for it (at once if so), false if the
   * stream ended first: for senders of large amounts (offline messages,
   * archives) to go at the reader's pace.
   */
  whenWritable(): Promise<boolean>;
}

/** Where a stanza came from, for routing decisions and reply paths. */
export type Origin =
  | { kind: 'c2s'; session: ClientSession }
  | { kind: 's2s'; domains: Set<string> }
  /** An XEP-0114 external component, authenticated for its domain. */
  | { kind: 'component'; domain: string }
  /**
   * A local user's own stanza sent without a client stream of theirs: a
   * privileged component (XEP-0356 message permission) sending as the user.
   * It takes the user's outgoing path (pre-* events: archive, carbons).
   */
  | { kind: 'on-behalf'; domain: string }
  | { kind: 'host'; name: string }
  | { kind: 'server' }
  /** A client stream before authentication (in-band registration needs its IP). */
  | { kind: 'unauthenticated'; ip: string };

/** Whether a stanza is the sending user's own (from one of their clients, or sent on their behalf). */
export function sentByUser(origin: Origin): boolean {
  return origin.kind === 'c2s' || origin.kind === 'on-behalf';
}
