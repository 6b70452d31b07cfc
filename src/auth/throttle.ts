// Password-guessing defence shared by every SASL path (c2s SASL today,
// SASL2/FAST later): failed attempts are counted per address and per
// account across connections, failures are answered ever more slowly, and
// after many the address (or account) is blocked for a while. Every failure
// is logged at warn in one fixed-shape line for fail2ban
// (docs/security.md):
//   <time> WARN auth: authentication failed ip=<address> user=<jid> mechanism=<m> reason=<why>
//
// The calls, in the order a mechanism makes them:
//   check(ip, user)       before looking at credentials: blocked?
//   failed({...})         after a wrong answer: logs, counts, returns the delay
//                         to wait before answering (the caller waits)
//   succeeded(ip, user)   after a right one
// An account block does not apply to an address that logged in to that
// account successfully within the block time, so an attacker cannot lock
// the owner out from elsewhere. IPv6 addresses count per /64, the block a
// single host usually controls.
import type { Logger } from '../log.ts';
import { addressKey } from '../util/address-limit.ts';

export { addressKey };

export interface ThrottleLimits {
  /** Failures answered without delay (per address and per account). */
  freeFailures: number;
  /** Longest delay before a failure is answered, in seconds. */
  maxDelay: number;
  /** Failures after which the address or account is blocked. */
  blockAfter: number;
  /** Seconds a block lasts; counts are forgotten after this long without failures. */
  blockTime: number;
}

export type ThrottleVerdict = { blocked: false } | { blocked: true; retryAfter: number };

export interface FailedAttempt {
  ip: string;
  /** The account tried (bare JID), or null when none could be read. */
  user: string | null;
  mechanism: string;
  /** The SASL condition answered (not-authorized, malformed-request, ...). */
  reason: string;
}

interface Counter {
  failures: number;
  last: number;
  blockedUntil: number;
}

// Enough for a busy attack without letting random account names grow the maps without bound.
const MAX_ENTRIES = 100_000;
// First delay after the free failures; doubles with each further failure.
const BASE_DELAY_MS = 250;

export class AuthThrottle {
  private readonly counters = new Map<string, Counter>();
  /** "account address" → until when that address is trusted for the account. */
  private readonly trusted = new Map<string, number>();

  constructor(
    private readonly limits: ThrottleLimits,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether an attempt from `ip` (for `user`, when known) may go ahead. */
  check(ip: string, user: string | null): ThrottleVerdict {
    const t = this.now();
    const addr = this.current(`ip ${addressKey(ip)}`, t);
    let until = addr && addr.blockedUntil > t ? addr.blockedUntil : 0;
    if (user && !this.isTrusted(user, ip, t)) {
      const acct = this.current(`user ${user}`, t);
      if (acct && acct.blockedUntil > until) until = acct.blockedUntil;
    }
    return until > t ? { blocked: true, retryAfter: Math.ceil((until - t) / 1000) } : { blocked: false };
  }

  /** Records and logs a failed attempt; returns how long (ms) to wait before answering it. */
  failed(attempt: FailedAttempt): number {
    const t = this.now();
    const byAddr = this.bump(`ip ${addressKey(attempt.ip)}`, t);
    const byUser = attempt.user ? this.bump(`user ${attempt.user}`, t) : 0;
    const failures = Math.max(byAddr, byUser);
    const delay = this.delayFor(failures);
    // ip first and unquoted, so the fail2ban pattern never reaches text the client chose.
    this.log.warn('authentication failed', {
      ip: attempt.ip,
      user: shown(attempt.user),
      mechanism: attempt.mechanism,
      reason: attempt.reason,
      failures,
    });
    return delay;
  }

  /** Logs an attempt refused because of a block (counted by fail2ban like a failure). */
  refused(attempt: Omit<FailedAttempt, 'reason'>, retryAfter: number): void {
    this.log.warn('authentication failed', {
      ip: attempt.ip,
      user: shown(attempt.user),
      mechanism: attempt.mechanism,
      reason: 'blocked',
      retryAfter,
    });
  }

  /** A correct login: the account's count is cleared and the address trusted for it. */
  succeeded(ip: string, user: string): void {
    const t = this.now();
    this.counters.delete(`user ${user}`);
    const key = `${user} ${addressKey(ip)}`;
    this.trusted.delete(key);
    this.trusted.set(key, t + this.limits.blockTime * 1000);
    trim(this.trusted);
  }

  /** The delay for the n-th failure in a row, in ms. */
  delayFor(failures: number): number {
    const over = failures - this.limits.freeFailures;
    if (over <= 0) return 0;
    return Math.min(this.limits.maxDelay * 1000, BASE_DELAY_MS * 2 ** Math.min(over - 1, 20));
  }

  private isTrusted(user: string, ip: string, t: number): boolean {
    const until = this.trusted.get(`${user} ${addressKey(ip)}`);
    return until !== undefined && until > t;
  }

  /** The counter for `key`, or undefined once it has been quiet for the block time. */
  private current(key: string, t: number): Counter | undefined {
    const c = this.counters.get(key);
    if (c && t - c.last > this.limits.blockTime * 1000 && c.blockedUntil <= t) {
      this.counters.delete(key);
      return undefined;
    }
    return c;
  }

  private bump(key: string, t: number): number {
    const c = this.current(key, t) ?? { failures: 0, last: t, blockedUntil: 0 };
    c.failures++;
    c.last = t;
    if (c.failures >= this.limits.blockAfter && c.blockedUntil <= t) c.blockedUntil = t + this.limits.blockTime * 1000;
    // Re-inserted so the map stays in order of last use (the oldest go first when full).
    this.counters.delete(key);
    this.counters.set(key, c);
    trim(this.counters);
    return c.failures;
  }
}

/** The account name as logged: bounded, since a client chose it. */
function shown(user: string | null): string {
  if (user === null) return '';
  return user.length > 200 ? `${user.slice(0, 200)}…` : user;
}

function trim(map: Map<string, unknown>): void {
  while (map.size > MAX_ENTRIES) map.delete(map.keys().next().value!);
}
