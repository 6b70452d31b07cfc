// What cluster nodes say to each other through Redis, as JSON: commands to
// one node (its inbox stream) and events to all (the events channel), the
// state of a bound session as every node mirrors it, and where a forwarded
// stanza came from. Kept apart from the transport so both ends agree on
// one definition.
import type { Origin } from '../host/session.ts';

/** A bound session as mirrored on every node (registry hash and events). */
export interface SessionState {
  /** Full JID. */
  j: string;
  /** Session id (a replaced session with the same JID has another). */
  s: string;
  /** Bind order: the oldest session of a user decides the user's home node. */
  b: number;
  /** Version, increasing with each change: a mirror keeps the newest it saw. */
  v: number;
  tr: 'tcp' | 'websocket';
  ip: string;
  sec: boolean;
  /** Last available presence as XML, or null while unavailable. */
  p: string | null;
  pr: number;
  rr: boolean;
  /** Per-module session data (carbons enabled, directed presences, ...), encoded by `encodeValue`. */
  d: Array<[string, unknown]>;
}

/** Where a forwarded stanza came from. */
export type OriginWire =
  /** `i`: the sender's instance (its session may not be mirrored here yet). */
  | { k: 'c2s'; j: string; s: string; i: string }
  | { k: 's2s'; d: string[] }
  | { k: 'component'; d: string }
  /** A privileged component sending as a user (XEP-0356). */
  | { k: 'on-behalf'; d: string }
  | { k: 'host'; n: string }
  | { k: 'server' };

/** Commands, each to one node's inbox. */
export type Command =
  /** Deliver a stanza to one of your sessions. */
  | { t: 'send'; j: string; s: string; x: string }
  /** Handle this stanza here (you are its recipient's home, or the room's node). */
  | { t: 'route'; x: string; o: OriginWire; h?: number }
  /** Close one of your sessions. */
  | { t: 'close'; j: string; s: string; e?: string; m?: string }
  /** A module on another node changed a field of one of your sessions (through its mirror). */
  | { t: 'set'; j: string; s: string; f: 'presence' | 'priority' | 'rosterRequested'; v: unknown }
  | { t: 'data'; j: string; s: string; k: string; v?: unknown; del?: boolean }
  /**
   * XEP-0198: a client resumes, on instance `i`, the stream-managed session
   * `id` of user `u` (bare JID) that you hold; `h` is the client's count.
   * Answer with `handover` (reply token `r`) to `i`.
   */
  | { t: 'takeover'; id: string; u: string; h: number; r: string; i: string }
  /** The answer to `takeover`: the session's state (it left the sender quietly), or why not. */
  | { t: 'handover'; r: string; st?: HandoverState; f?: 'item-not-found' | 'too-high'; h?: number; sent?: number };

/**
 * A stream-managed session moving to another node (XEP-0198 resumption on
 * another node): what a resumption on the same node keeps in memory.
 */
export interface HandoverState {
  /** Full JID, session id and bind order: the session keeps them. */
  j: string;
  s: string;
  b: number;
  /** The SM-ID and its resumption timeout (seconds). */
  id: string;
  to: number;
  /** Inbound h (stanzas from the client whose effects are durable), outbound sent count and the client's last h. */
  hi: number;
  so: number;
  ak: number;
  /** Stanzas sent to the client and not acknowledged by it (after its h on <resume/>), oldest first, as XML. */
  u: string[];
  /** Presence (XML or null), priority, roster interest, per-module session data (carbons, directed presences). */
  p: string | null;
  pr: number;
  rr: boolean;
  d: Array<[string, unknown]>;
}

/** How a command ended: in the inbox, refused (that instance is dead), or Redis failed. */
export type CommandResult = 'ok' | 'gone' | 'error';

/** Events, to every node. */
export type ClusterEvent =
  | { t: 'up'; i: string }
  /** A session bound or changed. */
  | { t: 's'; i: string; st: SessionState }
  /** A session ended. */
  | { t: 'g'; i: string; j: string; s: string }
  /**
   * A session moved from instance `i` to instance `to` (XEP-0198 resumption
   * there): every node routes it to `to` from now on (state `st`, version 0
   * until `to` announces it), and ignores later states of session `st.s`
   * from `i` (stale announcements in flight).
   */
  | { t: 'm'; i: string; to: string; st: SessionState }
  /** A node was found dead and cleaned up (its sessions, claims and inbox are gone). */
  | { t: 'dead'; i: string }
  /** An entry of a store kept in memory changed (store n, key k, stored already): re-read it. */
  | { t: 'c'; i: string; n: string; k: string };

export function encodeOrigin(origin: Origin, instanceOf: (s: Extract<Origin, { kind: 'c2s' }>['session']) => string): OriginWire {
  switch (origin.kind) {
    case 'c2s':
      return { k: 'c2s', j: origin.session.jid.toString(), s: origin.session.id, i: instanceOf(origin.session) };
    case 's2s':
      return { k: 's2s', d: [...origin.domains] };
    case 'component':
      return { k: 'component', d: origin.domain };
    case 'on-behalf':
      return { k: 'on-behalf', d: origin.domain };
    case 'host':
      return { k: 'host', n: origin.name };
    default:
      return { k: 'server' };
  }
}

/** Session data values: JSON, with string sets (directed presences) kept as sets. */
export function encodeValue(v: unknown): unknown {
  if (v instanceof Set) return { $set: [...v] };
  return v;
}

export function decodeValue(v: unknown): unknown {
  if (v && typeof v === 'object' && Array.isArray((v as { $set?: unknown }).$set)) return new Set((v as { $set: unknown[] }).$set);
  return v;
}
