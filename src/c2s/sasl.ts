// SASL mechanisms for client logins (RFC 6120 §6): SCRAM-SHA-256,
// SCRAM-SHA-1 and PLAIN (PLAIN only on encrypted streams). Each exchange is
// checked against the stored SCRAM keys; no password is ever stored.
import { ScramError, type ScramHash, ScramServer, verifyPassword } from '../auth/scram.ts';
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

class PlainExchange implements SaslExchange {
  constructor(private readonly ctx: SaslContext) {}

  async step(data: Buffer): Promise<SaslStep> {
    const parts = data.toString('utf8').split('\u0000');
    if (parts.length !== 3) return { kind: 'failure', condition: 'malformed-request' };
    const [authzid, authcid, password] = parts as [string, string, string];
    const user = localpart(authcid, this.ctx.domain);
    if (!user) return { kind: 'failure', condition: 'not-authorized' };
    if (!checkAuthzid(authzid, user, this.ctx.domain)) return { kind: 'failure', condition: 'invalid-authzid' };
    const account = await this.ctx.accounts.get(user);
    const creds = account?.scram['SHA-256'] ?? account?.scram['SHA-1'];
    const hash: ScramHash = account?.scram['SHA-256'] ? 'SHA-256' : 'SHA-1';
    if (!creds || !verifyPassword(hash, creds, password)) return { kind: 'failure', condition: 'not-authorized' };
    return { kind: 'success', user };
  }
}

class ScramExchange implements SaslExchange {
  private readonly scram: ScramServer;
  private user: string | null = null;
  private stage = 0;

  constructor(
    private readonly hash: ScramHash,
    private readonly ctx: SaslContext,
  ) {
    this.scram = new ScramServer(hash);
  }

  async step(data: Buffer): Promise<SaslStep> {
    try {
      if (this.stage === 0) {
        this.stage = 1;
        const username = this.scram.first(data.toString('utf8'));
        this.user = localpart(username, this.ctx.domain);
        const account = this.user ? await this.ctx.accounts.get(this.user) : undefined;
        const creds = account?.scram[this.hash];
        if (!this.user || !creds) return { kind: 'failure', condition: 'not-authorized' };
        if (!checkAuthzid(this.scram.authzid, this.user, this.ctx.domain)) {
          return { kind: 'failure', condition: 'invalid-authzid' };
        }
        return { kind: 'challenge', data: this.scram.challenge(creds) };
      }
      if (this.stage === 1) {
        this.stage = 2;
        const account = await this.ctx.accounts.get(this.user!);
        const creds = account?.scram[this.hash];
        if (!creds) return { kind: 'failure', condition: 'not-authorized' };
        const serverFinal = this.scram.final(data.toString('utf8'), creds);
        return { kind: 'success', user: this.user!, data: serverFinal };
      }
      return { kind: 'failure', condition: 'malformed-request' };
    } catch (err) {
      if (err instanceof ScramError) return { kind: 'failure', condition: err.condition };
      throw err;
    }
  }
}
