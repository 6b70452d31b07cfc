// FAST tokens (XEP-0484), per user (bare JID) and per client installation
// (the SASL2 <user-agent id/>): at most one token in use and one newly
// issued, as the XEP's implementation notes describe ("current" and "new"
// slots). A token is stored as its SHA-256 only, with its mechanism, when it
// was issued, when it expires and the highest replay counter seen.
//
// Tokens are longer than SHA-256's block (64 bytes), so HMAC keyed with a
// token first hashes it (RFC 2104 §2): the HT-* mechanisms are verified
// with the stored hash and the token itself is never kept. The hash is as
// good as the token for HT-* logins (so is any verifier for an HMAC-based
// mechanism): a copy of the database lets one log in until the tokens
// expire or are revoked, like a copy of any session secret. Changing the
// password revokes all of a user's tokens.
import { createHash, randomBytes } from 'node:crypto';
import { KeyedMutex } from '../util/keyed-mutex.ts';
import type { KeyValueStore, StorageBackend } from './types.ts';

/** The store name (listed in storage/user-data.ts). */
export const FAST_TOKEN_STORE = 'fast-tokens';
/** Random bytes in a token: more than SHA-256's 64-byte block once base64url-encoded (96 characters). */
const TOKEN_BYTES = 72;

export interface FastTokenRecord {
  /** base64 SHA-256 of the token (the HMAC key HT-* mechanisms use for it). */
  hash: string;
  mechanism: string;
  /** Epoch ms. */
  issued: number;
  /** Epoch ms. */
  expires: number;
  /** Highest <fast count='…'/> accepted with this token (replay guard); 0 when none. */
  count: number;
}

export interface FastClient {
  /** The token the client last authenticated with. */
  current?: FastTokenRecord;
  /** A token issued since, not used yet (XEP-0484 §3.5: the old one stays valid until then). */
  pending?: FastTokenRecord;
  /** Epoch ms of the last issue or use, to forget the least used clients first. */
  lastUsed: number;
  /** What the client said it is (<user-agent><software/><device/>), for the user's eyes. */
  software?: string;
  device?: string;
}

export interface FastTokens {
  /** By SASL2 user-agent id. */
  clients: Record<string, FastClient>;
}

/** A token just issued: the secret goes to the client once, never to storage. */
export interface IssuedToken {
  token: string;
  expires: number;
}

/** Which stored token an authentication matched. */
export interface FastMatch {
  record: FastTokenRecord;
  /** The token had been issued and was used for the first time now. */
  wasPending: boolean;
}

export type FastVerdict =
  | { ok: true; match: FastMatch }
  | { ok: false; reason: 'no-token' | 'mismatch' | 'expired' | 'wrong-mechanism' | 'replayed' };

export function tokenHash(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

export class FastTokenStore {
  private readonly kv: KeyValueStore<FastTokens>;
  private readonly mutex = new KeyedMutex();

  constructor(backend: StorageBackend) {
    this.kv = backend.keyValue<FastTokens>(FAST_TOKEN_STORE);
  }

  /**
   * Issues a token for `mechanism` to one client of `user`. It goes to the
   * client's "new" slot, replacing one issued before and never used; the
   * token in use stays valid until the new one is used. Past
   * `maxClients`, the clients used least recently lose their tokens.
   */
  issue(
    user: string,
    agent: { id: string; software?: string; device?: string },
    mechanism: string,
    lifetimeMs: number,
    maxClients: number,
    now = Date.now(),
  ): Promise<IssuedToken> {
    return this.mutex.run(user, async () => {
      const tokens = (await this.kv.get(user)) ?? { clients: {} };
      const token = randomBytes(TOKEN_BYTES).toString('base64url');
      const record: FastTokenRecord = {
        hash: tokenHash(token).toString('base64'),
        mechanism,
        issued: now,
        expires: now + lifetimeMs,
        count: 0,
      };
      const client = tokens.clients[agent.id] ?? { lastUsed: now };
      client.pending = record;
      client.lastUsed = now;
      if (agent.software !== undefined) client.software = agent.software;
      if (agent.device !== undefined) client.device = agent.device;
      tokens.clients[agent.id] = client;
      forgetLeastUsed(tokens, maxClients, agent.id);
      await this.kv.set(user, tokens);
      return { token, expires: record.expires };
    });
  }

  /**
   * Checks a FAST authentication: `proves(hash)` says whether the client's
   * answer was made with the token whose SHA-256 is `hash` (a constant-time
   * comparison in the mechanism). The new slot is tried first; a match
   * there makes it the token in use (the older one is gone). `count`, when
   * the client sent one, must be above every count seen with that token.
   */
  verify(
    user: string,
    agentId: string,
    mechanism: string,
    proves: (hash: Buffer) => boolean,
    count: number | null,
    now = Date.now(),
  ): Promise<FastVerdict> {
    return this.mutex.run(user, async () => {
      const tokens = await this.kv.get(user);
      const client = tokens?.clients[agentId];
      if (!tokens || !client || (!client.pending && !client.current)) return { ok: false, reason: 'no-token' };
      // Both slots are checked whatever the first gives, so timing does not tell which one matched.
      const slots = [client.pending, client.current] as const;
      const matches = slots.map((r) => (r ? proves(Buffer.from(r.hash, 'base64')) : false));
      const index = matches.indexOf(true);
      if (index < 0) return { ok: false, reason: 'mismatch' };
      const record = slots[index]!;
      if (record.expires <= now) return { ok: false, reason: 'expired' };
      if (record.mechanism !== mechanism) return { ok: false, reason: 'wrong-mechanism' };
      if (count !== null && count <= record.count) return { ok: false, reason: 'replayed' };
      if (count !== null) record.count = count;
      const wasPending = index === 0;
      if (wasPending) {
        // XEP-0484 §3.5: using the newer token invalidates the older one.
        client.current = record;
        delete client.pending;
      }
      client.lastUsed = now;
      await this.kv.set(user, tokens);
      return { ok: true, match: { record, wasPending } };
    });
  }

  /** Removes one client's tokens (it asked to, with <fast invalidate='true'/>). */
  invalidate(user: string, agentId: string): Promise<void> {
    return this.mutex.run(user, async () => {
      const tokens = await this.kv.get(user);
      if (!tokens?.clients[agentId]) return;
      delete tokens.clients[agentId];
      if (Object.keys(tokens.clients).length === 0) await this.kv.delete(user);
      else await this.kv.set(user, tokens);
    });
  }

  /** Removes every token of a user (password change, account deletion). */
  revokeAll(user: string): Promise<void> {
    return this.mutex.run(user, () => this.kv.delete(user));
  }

  /** The user's clients with tokens, for listing (no secrets in them but hashes). */
  async clients(user: string): Promise<Record<string, FastClient>> {
    return (await this.kv.get(user))?.clients ?? {};
  }
}

/** Keeps the `max` most recently used clients (and `keep`, which was just used). */
function forgetLeastUsed(tokens: FastTokens, max: number, keep: string): void {
  const ids = Object.keys(tokens.clients);
  if (ids.length <= max) return;
  const byUse = ids.filter((id) => id !== keep).sort((a, b) => tokens.clients[a]!.lastUsed - tokens.clients[b]!.lastUsed);
  for (const id of byUse.slice(0, ids.length - Math.max(1, max))) delete tokens.clients[id];
}
