// SASL mechanisms for client logins (RFC 6120 §6, and XEP-0388 SASL2 over
// the same exchanges): SCRAM-SHA-256 and SCRAM-SHA-1, their -PLUS variants
// with channel binding (tls-exporter, tls-server-end-point: XEP-0440) where
// the stream has TLS, and PLAIN (on encrypted streams only). Each exchange
// is checked against the stored SCRAM keys; no password is ever stored.
// Unknown accounts get the same answers as known ones (decoy credentials),
// and every attempt goes through the shared AuthThrottle.
//
// The gs2 flag 'y' (client could bind but saw no -PLUS) is refused on SASL2
// as RFC 5802 says when -PLUS was offered, and taken like 'n' on legacy
// SASL: clients that know only tls-unique (undefined on TLS 1.3), such as
// slixmpp before 1.8.5, send 'y' on every TLS stream, and refusing it would
// lock them out. SASL2 clients must implement XEP-0440 (XEP-0388 §2.1) and
// so never need 'y' here.
import type { ChannelBinding } from '../auth/channel-binding.ts';
import { decoyCredentials, ScramError, type ScramHash, ScramServer, verifyPassword } from '../auth/scram.ts';
import type { AuthThrottle } from '../auth/throttle.ts';
import type { Logger } from '../log.ts';
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
  | { kind: 'success'; user: string; data?: string | Buffer }
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
  log: Logger;
  /** Server secret the decoy credentials for unknown accounts derive from (auth/scram.ts). */
  decoySecret: Buffer;
  /** The connection's TLS channel bindings (none on plain streams). */
  binding: ChannelBinding;
  /** SASL2 refuses the gs2 flag 'y' when -PLUS was offered; legacy SASL takes it (see above). */
  sasl2: boolean;
  /** Whether -PLUS is offered on this path (legacy SASL: c2s.legacySaslPlus). */
  plus: boolean;
}

/** The password mechanisms offered on a stream, strongest first (-PLUS only where `plus` and TLS allow). */
export function offeredMechanisms(secure: boolean, binding: ChannelBinding, plus = true): string[] {
  const list = plus && binding.types().length > 0 ? ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-1-PLUS'] : [];
  list.push('SCRAM-SHA-256', 'SCRAM-SHA-1');
  if (secure) list.push('PLAIN');
  return list;
}

export function createExchange(mechanism: string, ctx: SaslContext): SaslExchange | null {
  const offered = offeredMechanisms(ctx.secure, ctx.binding, ctx.plus);
  if (!offered.includes(mechanism)) return null;
  if (mechanism === 'PLAIN') return new PlainExchange(ctx);
  const plus = mechanism.endsWith('-PLUS');
  return new ScramExchange(mechanism.startsWith('SCRAM-SHA-1') ? 'SHA-1' : 'SHA-256', plus, offered[0]!.endsWith('-PLUS'), ctx);
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
export abstract class ThrottledExchange implements SaslExchange {
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
  protected async fail(condition: SaslFailure, account: string | null, reason: string = condition, text?: string): Promise<SaslStep> {
    const delay = this.ctx.throttle.failed({ ip: this.ctx.ip, user: account, mechanism: this.mechanism, reason });
    if (delay > 0) await sleep(delay);
    return { kind: 'failure', condition, text };
  }

  /**
   * A refusal that examined no credential (a channel binding type this
   * stream lacks): answered at once and not counted as a guess, so a client
   * that tries its mechanisms in turn is not throttled for it.
   */
  protected refuse(condition: SaslFailure, account: string | null, text: string): SaslStep {
    this.ctx.log.info('authentication mechanism refused', { ip: this.ctx.ip, user: account ?? '', mechanism: this.mechanism, reason: text });
    return { kind: 'failure', condition, text };
  }

  protected success(user: string, data?: string | Buffer): SaslStep {
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
    plus: boolean,
    plusOffered: boolean,
    ctx: SaslContext,
  ) {
    super(ctx, `SCRAM-${hash}${plus ? '-PLUS' : ''}`);
    this.scram = new ScramServer(hash, undefined, {
      plus,
      binding: ctx.binding,
      plusOffered,
      refuseDowngrade: ctx.sasl2,
    });
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
      if (!(err instanceof ScramError)) throw err;
      if (err.kind === 'negotiation') return this.refuse(err.condition, this.accountName, err.text ?? err.condition);
      if (err.kind === 'channel-binding') return this.fail(err.condition, this.accountName, 'channel-binding-mismatch', err.text);
      return this.fail(err.condition, this.accountName);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
