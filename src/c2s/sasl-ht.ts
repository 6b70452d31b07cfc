// The HT-* SASL mechanisms (draft-schmaus-kitten-sasl-ht) with which a
// client logs in with a FAST token (XEP-0484) in one round trip:
//   client → authcid NUL HMAC-SHA-256(token, "Initiator" || cb-data)
//   server → HMAC-SHA-256(token, "Responder" || cb-data)   (SASL2 additional data)
// cb-data is the channel binding of the suffix: NONE (nothing), ENDP
// (tls-server-end-point), EXPR (tls-exporter). The token is checked against
// the client's stored tokens (storage/fast-tokens.ts), keyed by the SASL2
// user-agent id; a wrong token counts as a failed login like a wrong
// password.
import { createHmac } from 'node:crypto';
import type { ChannelBinding, ChannelBindingType } from '../auth/channel-binding.ts';
import { safeEqual } from '../auth/scram.ts';
import { Jid } from '../jid/jid.ts';
import type { FastMatch, FastTokenStore } from '../storage/fast-tokens.ts';
import { type SaslContext, type SaslStep, ThrottledExchange } from './sasl.ts';

/** HT-SHA-256 variants, strongest first, with the binding each needs (null: none). */
const HT_MECHANISMS: Array<[string, ChannelBindingType | null]> = [
  ['HT-SHA-256-EXPR', 'tls-exporter'],
  ['HT-SHA-256-ENDP', 'tls-server-end-point'],
  ['HT-SHA-256-NONE', null],
];

/** The FAST mechanisms this connection can offer. */
export function offeredFastMechanisms(binding: ChannelBinding): string[] {
  const types = binding.types();
  return HT_MECHANISMS.filter(([, cb]) => cb === null || types.includes(cb)).map(([name]) => name);
}

export interface FastContext {
  store: FastTokenStore;
  /** The SASL2 <user-agent id/>: tokens are per client installation. */
  agentId: string | null;
  /** <fast count='…'/>, when the client sent one (replay guard). */
  count: number | null;
}

/** A successful FAST login also says which stored token it used. */
export type HtStep = SaslStep & { fast?: FastMatch };

export function createHtExchange(mechanism: string, ctx: SaslContext, fast: FastContext): HtExchange | null {
  const entry = HT_MECHANISMS.find(([name]) => name === mechanism);
  if (!entry || !offeredFastMechanisms(ctx.binding).includes(mechanism)) return null;
  return new HtExchange(mechanism, entry[1], ctx, fast);
}

class HtExchange extends ThrottledExchange {
  private done = false;

  constructor(
    private readonly name: string,
    private readonly cbType: ChannelBindingType | null,
    ctx: SaslContext,
    private readonly fast: FastContext,
  ) {
    super(ctx, name);
  }

  async step(data: Buffer): Promise<HtStep> {
    // One message only: the initial response.
    if (this.done) return this.fail('malformed-request', null);
    this.done = true;
    const nul = data.indexOf(0);
    if (nul <= 0) return this.fail('malformed-request', null);
    const authcid = data.subarray(0, nul).toString('utf8');
    const answer = data.subarray(nul + 1);
    const user = this.localpart(authcid);
    const account = this.account(user, authcid);
    const refusal = this.blocked(account);
    if (refusal) return refusal;
    if (!user) return this.fail('not-authorized', account);
    if (!this.fast.agentId) return this.fail('malformed-request', account, 'fast-without-user-agent', 'FAST needs a <user-agent id=…/>');
    const cb = this.cbType ? this.ctx.binding.data(this.cbType) : Buffer.alloc(0);
    if (!cb) return this.fail('malformed-request', account);
    const initiator = Buffer.concat([Buffer.from('Initiator'), cb]);
    const verdict = await this.fast.store.verify(
      `${user}@${this.ctx.domain}`,
      this.fast.agentId,
      this.name,
      (key) => safeEqual(hmac(key, initiator), answer),
      this.fast.count,
    );
    if (!verdict.ok) {
      // XEP-0484 §4: a token no longer trusted is answered credentials-expired, a wrong one not-authorized.
      const condition = verdict.reason === 'expired' ? 'credentials-expired' : 'not-authorized';
      return this.fail(condition, account, `fast-token-${verdict.reason}`);
    }
    const key = Buffer.from(verdict.match.record.hash, 'base64');
    const responder = hmac(key, Buffer.concat([Buffer.from('Responder'), cb]));
    return { ...this.success(user, responder), fast: verdict.match };
  }

  /** The authcid as a localpart: a bare localpart, or this domain's bare JID. */
  private localpart(authcid: string): string | null {
    try {
      if (authcid.includes('@')) {
        const jid = Jid.parse(authcid);
        return jid.domain === this.ctx.domain && !jid.resource ? jid.local || null : null;
      }
      return Jid.of(authcid, this.ctx.domain).local || null;
    } catch {
      return null;
    }
  }
}

function hmac(key: Buffer, data: Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest();
}
