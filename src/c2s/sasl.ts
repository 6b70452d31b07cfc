// SASL mechanisms for client logins (RFC 6120 §6): SCRAM-SHA-256,
// SCRAM-SHA-1 and PLAIN (PLAIN only on encrypted streams). Each exchange is
// checked against the stored SCRAM keys; no password is ever stored.
// Unknown accounts get the same answers as known ones (decoy credentials),
// and every attempt goes through the shared AuthThrottle.
import { decoyCredentials, ScramError, type ScramHash, ScramServer, verifyPassword } from '../auth/scram.ts';
import type { AuthThrottle } from '../auth/throttle.ts';
import { Jid } from '../jid/jid.ts';
import type { AccountStore } from '../storage/accounts.ts';

export type SaslFailure =
  | 'aborted'
  | 'account-disabled'
  | 'credentials-expired'
  | 'encryption-required'
  | 'incorrect-encoding'
  | 'invalid-authzid'
  | 'invalid-mechanism'
  | 'malformed-request'
  | 'mechanism-too-weak'
  | 'not-authorized'
  | 'temporary-auth-failure';

export type SaslStep =
  | { kind: 'challenge'; data: string }
  | { kind: 'success'; user: string; data?: string }
  | { kind: 'failure'; condition: SaslFailure; text?: string };

export interface SaslExchange {
  step(data: Buffer): Promise<SaslStep>;
}

export interface SaslContext {
  domain: string;
  secure: boolean;
  accounts: AccountStore;
  /** The client's address, for throttling and the failure log. */
  ip: string;
  throttle: AuthThrottle;
  /** Server secret the decoy credentials for unknown accounts derive from (auth/scram.ts). */
  decoySecret: Buffer;
}

export function offeredMechanisms(secure: boolean): string[] {
  const list = ['SCRAM-SHA-256', 'SCRAM-SHA-1'];
  if (secure) list.push('PLAIN');
  return list;
}

export function createExchange(mechanism: string, ctx: SaslContext): SaslExchange | null {
  if (!offeredMechanisms(ctx.secure).includes(mechanism)) return null;
  if (mechanism === 'PLAIN') return new PlainExchange(ctx);
  return new ScramExchange(mechanism === 'SCRAM-SHA-1' ? 'SHA-1' : 'SHA-256', ctx);
}

/** Normalises a SASL username to a localpart, or null if it cannot be one. */
function localpart(username: string, domain: string): string | null {
  try {
    const jid = Jid.of(username, domain);
    return jid.local || null;
  } catch {
    return null;
  }
}

function checkAuthzid(authzid: string, user: string, domain: string): boolean {
  if (!authzid) return true;
  const j = Jid.tryParse(authzid);
  return j !== null && j.bare === `${user}@${domain}`;
}

/** What every mechanism shares: throttling, the failure log, the delayed failure. */
abstract class ThrottledExchange implements SaslExchange {
  constructor(
    protected readonly ctx: SaslContext,
    private readonly mechanism: string,
  ) {}

  abstract step(data: Buffer): Promise<SaslStep>;

  /** The account name for throttling and logs: the bare JID, or what the client sent. */
  protected account(user: string | null, raw: string): string {
    return user ? `${user}@${this.ctx.domain}` : raw;
  }

  /** A refusal when the address or account is blocked, else null. */
  protected blocked(account: string | null): SaslStep | null {
    const verdict = this.ctx.throttle.check(this.ctx.ip, account);
    if (!verdict.blocked) return null;
    this.ctx.throttle.refused({ ip: this.ctx.ip, user: account, mechanism: this.mechanism }, verdict.retryAfter);
    return {
      kind: 'failure',
      condition: 'temporary-auth-failure',
      text: `too many failed attempts: try again in ${verdict.retryAfter} s`,
    };
  }

  /** Records a failure and answers it after the throttle's delay. */
  protected async fail(condition: SaslFailure, account: string | null): Promise<SaslStep> {
    const delay = this.ctx.throttle.failed({ ip: this.ctx.ip, user: account, mechanism: this.mechanism, reason: condition });
    if (delay > 0) await sleep(delay);
    return { kind: 'failure', condition };
  }

  protected success(user: string, data?: string): SaslStep {
    this.ctx.throttle.succeeded(this.ctx.ip, `${user}@${this.ctx.domain}`);
    return { kind: 'success', user, data };
  }
}

class PlainExchange extends ThrottledExchange {
  constructor(ctx: SaslContext) {
    super(ctx, 'PLAIN');
  }

  async step(data: Buffer): Promise<SaslStep> {
    const parts = data.toString('utf8').split('\u0000');
    if (parts.length !== 3) return this.fail('malformed-request', null);
    const [authzid, authcid, password] = parts as [string, string, string];
    const user = localpart(authcid, this.ctx.domain);
    const account = this.account(user, authcid);
    const refusal = this.blocked(account);
    if (refusal) return refusal;
    if (user && !checkAuthzid(authzid, user, this.ctx.domain)) return this.fail('invalid-authzid', account);
    const record = user ? await this.ctx.accounts.get(user) : undefined;
    const hash: ScramHash = record?.scram['SHA-256'] || !record?.scram['SHA-1'] ? 'SHA-256' : 'SHA-1';
    // Unknown accounts cost the same key derivation as known ones.
    const creds = record?.scram[hash] ?? decoyCredentials(this.ctx.decoySecret, hash, user ?? authcid);
    if (!user || !verifyPassword(hash, creds, password)) return this.fail('not-authorized', account);
    return this.success(user);
  }
}

class ScramExchange extends ThrottledExchange {
  private readonly scram: ScramServer;
  private user: string | null = null;
  private accountName: string | null = null;
  private stage = 0;

  constructor(
    private readonly hash: ScramHash,
    ctx: SaslContext,
  ) {
    super(ctx, `SCRAM-${hash}`);
    this.scram = new ScramServer(hash);
  }

  async step(data: Buffer): Promise<SaslStep> {
    try {
      if (this.stage === 0) {
        this.stage = 1;
        const username = this.scram.first(data.toString('utf8'));
        this.user = localpart(username, this.ctx.domain);
        this.accountName = this.account(this.user, username);
        const refusal = this.blocked(this.accountName);
        if (refusal) return refusal;
        if (this.user && !checkAuthzid(this.scram.authzid, this.user, this.ctx.domain)) {
          return this.fail('invalid-authzid', this.accountName);
        }
        // Known or not, the client gets a challenge (unknown: decoy credentials).
        const record = this.user ? await this.ctx.accounts.get(this.user) : undefined;
        return {
          kind: 'challenge',
          data: this.scram.challenge(record?.scram[this.hash], this.ctx.decoySecret, this.user ?? username),
        };
      }
      if (this.stage === 1) {
        this.stage = 2;
        const serverFinal = this.scram.final(data.toString('utf8'));
        return this.success(this.user!, serverFinal);
      }
      return this.fail('malformed-request', this.accountName);
    } catch (err) {
      if (err instanceof ScramError) return this.fail(err.condition, this.accountName);
      throw err;
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
