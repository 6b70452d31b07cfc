// Shared state and settings that the individual servers of the simulator use.
// Kept in its own module so the servers do not import each other.

import type { AccountStore } from './accounts.ts';
import type { PassportAuthority } from './nexus.ts';
import type { TokenAuthority } from './tokens.ts';

export interface SimulatorOptions {
  /** Ports to bind; 0 (the default) picks an ephemeral port. */
  httpPort?: number;
  notificationPort?: number;
  dispatchPort?: number;
  switchboardPort?: number;
  /** Seconds reported in QNG (when the client should ping again). Default 50. */
  pingIntervalSeconds?: number;
  /** Send a CHL right after the first CHG of a session. Default true. */
  challengeAfterLogin?: boolean;
  /** Also send a CHL every this many ms while logged in (0 = never). Default 0. */
  challengeIntervalMs?: number;
  /** Disconnect (OUT) a client that leaves a CHL unanswered this long. Default 60 s. */
  challengeTimeoutMs?: number;
  /** Produces challenge strings; defaults to random 20-digit numbers. */
  challengeGenerator?: () => string;
  /** Close a switchboard after this long without a MSG. Default 5 minutes. */
  switchboardIdleMs?: number;
  /** Forget a RNG invitation that was not answered after this long. Default 60 s. */
  ringTimeoutMs?: number;
  /** Lifetime of Passport tickets and challenge strings. Default 1 hour. */
  ticketLifetimeMs?: number;
  /** Receives one line per command in/out, for debugging. */
  log?: (entry: LogEntry) => void;
  /** Protocol versions offered, best first (default MSNP18..MSNP8); e.g. [11, 10, 9, 8] for a 2005 server. */
  protocols?: number[];
  /** false: a server without offline messages (MSNP13+ OIM services answer 404). Default true. */
  offlineMessages?: boolean;
}

export interface LogEntry {
  server: 'DS' | 'NS' | 'SB' | 'HTTP';
  direction: 'in' | 'out' | 'info';
  /** Account involved, when known. */
  email?: string;
  text: string;
}

export type ResolvedOptions = Required<Omit<SimulatorOptions, 'log'>> & Pick<SimulatorOptions, 'log'>;

export interface SwitchboardDirectory {
  /** Address clients connect to, "127.0.0.1:port". */
  address(): string;
  /** A single-use cookie for USR on a fresh switchboard (the XFR SB answer), for that endpoint. */
  issueXfrCookie(email: string, protocol: number, machineGuid: string | null): string;
}

export interface SimContext {
  readonly accounts: AccountStore;
  readonly passport: PassportAuthority;
  readonly tokens: TokenAuthority;
  readonly options: ResolvedOptions;
  readonly switchboard: SwitchboardDirectory;
  log(entry: LogEntry): void;
}
