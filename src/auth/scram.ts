// SCRAM (RFC 5802, RFC 7677) on node:crypto. Only the derived keys are ever
// stored; PLAIN logins are checked by re-deriving them from the password.
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { type ChannelBinding, NO_CHANNEL_BINDING } from './channel-binding.ts';

export type ScramHash = 'SHA-1' | 'SHA-256';
export const SCRAM_HASHES: ScramHash[] = ['SHA-256', 'SHA-1'];
export const DEFAULT_ITERATIONS = 4096;

export interface ScramCredentials {
  salt: string; // base64
  iterations: number;
  storedKey: string; // base64
  serverKey: string; // base64
}

const nodeHash = (h: ScramHash) => (h === 'SHA-1' ? 'sha1' : 'sha256');
const hashLen = (h: ScramHash) => (h === 'SHA-1' ? 20 : 32);

export function hmac(h: ScramHash, key: Buffer, data: string | Buffer): Buffer {
  return createHmac(nodeHash(h), key).update(data).digest();
}

export function digest(h: ScramHash, data: Buffer): Buffer {
  return createHash(nodeHash(h)).update(data).digest();
}

export function saltedPassword(h: ScramHash, password: string, salt: Buffer, iterations: number): Buffer {
  // SASLprep is approximated by NFKC, which covers the mappings users meet.
  return pbkdf2Sync(password.normalize('NFKC'), salt, iterations, hashLen(h), nodeHash(h));
}

export function deriveCredentials(
  h: ScramHash,
  password: string,
  salt: Buffer = randomBytes(16),
  iterations = DEFAULT_ITERATIONS,
): ScramCredentials {
  const salted = saltedPassword(h, password, salt, iterations);
  const clientKey = hmac(h, salted, 'Client Key');
  return {
    salt: salt.toString('base64'),
    iterations,
    storedKey: digest(h, clientKey).toString('base64'),
    serverKey: hmac(h, salted, 'Server Key').toString('base64'),
  };
}

// Decoys are recognised by identity, so no field of theirs can be forged into a stored record.
const decoys = new WeakSet<ScramCredentials>();

/**
 * Credentials for an account that does not exist (or has no keys for this
 * hash), so that every username gets the same kind of answer: a challenge
 * whose salt is the same on every attempt (derived from a server secret and
 * the name, as stable as a stored salt), the usual iteration count, and keys
 * that no proof or password matches. Without them SCRAM tells an attacker
 * which accounts exist (a challenge for known names, an immediate failure
 * for unknown ones), and PLAIN answers unknown names faster.
 */
export function decoyCredentials(secret: Buffer, h: ScramHash, username: string): ScramCredentials {
  const derive = (label: string, len: number) =>
    createHmac('sha256', secret).update(`${label}\u0000${h}\u0000${username}`).digest().subarray(0, len);
  const creds: ScramCredentials = {
    salt: derive('scram-salt', 16).toString('base64'),
    iterations: DEFAULT_ITERATIONS,
    storedKey: randomBytes(hashLen(h)).toString('base64'),
    serverKey: derive('scram-server-key', hashLen(h)).toString('base64'),
  };
  decoys.add(creds);
  return creds;
}

export function isDecoy(creds: ScramCredentials): boolean {
  return decoys.has(creds);
}

export function verifyPassword(h: ScramHash, creds: ScramCredentials, password: string): boolean {
  const again = deriveCredentials(h, password, Buffer.from(creds.salt, 'base64'), creds.iterations);
  // A decoy costs the same derivation as a real account, and never matches.
  return safeEqual(Buffer.from(again.storedKey, 'base64'), Buffer.from(creds.storedKey, 'base64')) && !isDecoy(creds);
}

export function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

/** Parses "k=v,k=v" SCRAM attribute lists. */
function attributes(s: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const part of s.split(',')) {
    if (part.length < 2 || part[1] !== '=') throw new ScramError('malformed-request');
    m.set(part[0]!, part.slice(2));
  }
  return m;
}

export class ScramError extends Error {
  constructor(
    readonly condition: 'malformed-request' | 'not-authorized' | 'encryption-required' | 'invalid-authzid',
    readonly text?: string,
    /**
     * Why, for the log: 'negotiation' when no credential was examined (a
     * channel binding type this stream lacks, a -PLUS mechanism without
     * binding), which is not a guess at a password and is not counted by
     * the login throttle; 'channel-binding' when the binding data did not
     * match this connection (a relayed login: the address is the relay's).
     */
    readonly kind: 'credentials' | 'negotiation' | 'channel-binding' = 'credentials',
  ) {
    super(text ?? condition);
  }
}

/** How one SCRAM exchange treats channel binding (RFC 5802 §6, XEP-0440). */
export interface ScramBindingPolicy {
  /** The mechanism is a -PLUS one: the client must bind with p=<type>. */
  plus: boolean;
  /** This connection's channel bindings. */
  binding: ChannelBinding;
  /** -PLUS mechanisms were offered on this stream. */
  plusOffered: boolean;
  /**
   * What the gs2 flag 'y' ("I could bind, but you offer no binding") means
   * when -PLUS was offered: true refuses it as RFC 5802 says (the offer was
   * stripped on the way); false takes it like 'n' (see c2s/sasl.ts: old
   * clients that know only tls-unique send it on every TLS stream).
   */
  refuseDowngrade: boolean;
}

const NO_BINDING_POLICY: ScramBindingPolicy = {
  plus: false,
  binding: NO_CHANNEL_BINDING,
  plusOffered: false,
  refuseDowngrade: true,
};

/** Decodes SCRAM's saslname escaping (=2C, =3D). */
function saslName(s: string): string {
  if (/=(?!2C|3D)/.test(s)) throw new ScramError('malformed-request');
  return s.replace(/=2C/g, ',').replace(/=3D/g, '=');
}

/**
 * Server side of one SCRAM exchange. `first()` takes the client-first-message
 * and returns the username so the caller can look up credentials; `challenge()`
 * builds server-first; `final()` checks the proof and returns server-final.
 */
export class ScramServer {
  private clientFirstBare = '';
  private serverFirst = '';
  private nonce = '';
  private gs2Header = '';
  private creds: ScramCredentials | null = null;
  /** The binding data the client must prove (empty when it does not bind). */
  private cbData: Buffer = Buffer.alloc(0);
  username = '';
  authzid = '';
  /** The channel binding type the client bound to, if any. */
  boundTo: string | null = null;

  constructor(
    readonly hash: ScramHash,
    // Injectable so the RFC test vectors (fixed server nonces) can be replayed.
    private readonly serverNonce: () => string = () => randomBytes(18).toString('base64'),
    private readonly policy: ScramBindingPolicy = NO_BINDING_POLICY,
  ) {}

  first(message: string): string {
    const m = /^([ny]|p=[^,]*),(a=[^,]*)?,(.*)$/.exec(message);
    if (!m) throw new ScramError('malformed-request');
    this.checkBinding(m[1]!);
    this.gs2Header = `${m[1]},${m[2] ?? ''},`;
    this.authzid = m[2] ? saslName(m[2].slice(2)) : '';
    this.clientFirstBare = m[3]!;
    const attrs = attributes(this.clientFirstBare);
    const n = attrs.get('n');
    const r = attrs.get('r');
    if (!n || !r || attrs.has('m')) throw new ScramError('malformed-request');
    this.username = saslName(n);
    this.nonce = r + this.serverNonce();
    return this.username;
  }

  /** The gs2 channel binding flag against the mechanism and this connection (RFC 5802 §6). */
  private checkBinding(flag: string): void {
    const { plus, binding, plusOffered, refuseDowngrade } = this.policy;
    if (flag.startsWith('p=')) {
      if (!plus) throw new ScramError('malformed-request', 'channel binding needs a -PLUS mechanism', 'negotiation');
      const type = flag.slice(2);
      const data = binding.data(type);
      if (!data) {
        const offered = binding.types().join(', ') || 'none';
        throw new ScramError('malformed-request', `channel binding type ${type} is not supported here (offered: ${offered})`, 'negotiation');
      }
      this.cbData = data;
      this.boundTo = type;
      return;
    }
    if (plus) throw new ScramError('malformed-request', 'a -PLUS mechanism needs channel binding', 'negotiation');
    if (flag === 'y' && plusOffered && refuseDowngrade) {
      throw new ScramError('malformed-request', 'channel binding was offered: the offer may have been stripped on the way', 'negotiation');
    }
  }

  /**
   * server-first for `creds`; for an unknown account (undefined) the same
   * answer built on decoy credentials derived from `decoySecret`, and the
   * exchange then fails at the proof like a wrong password. `decoyName` is
   * the normalised name (so case variants get one salt, as a real account's do).
   */
  challenge(creds: ScramCredentials | undefined, decoySecret?: Buffer, decoyName = this.username): string {
    if (!creds) {
      if (!decoySecret) throw new Error('a decoy secret is needed to answer for unknown accounts');
      creds = decoyCredentials(decoySecret, this.hash, decoyName);
    }
    this.creds = creds;
    this.serverFirst = `r=${this.nonce},s=${creds.salt},i=${creds.iterations}`;
    return this.serverFirst;
  }

  /** Checks client-final against the credentials of the challenge; returns server-final. */
  final(message: string, creds: ScramCredentials | null = this.creds): string {
    if (!creds) throw new ScramError('malformed-request');
    const idx = message.lastIndexOf(',p=');
    if (idx < 0) throw new ScramError('malformed-request');
    const withoutProof = message.slice(0, idx);
    const attrs = attributes(message);
    if (attrs.get('r') !== this.nonce) throw new ScramError('not-authorized');
    const binding = Buffer.concat([Buffer.from(this.gs2Header), this.cbData]);
    const c = Buffer.from(attrs.get('c') ?? '', 'base64');
    if (!safeEqual(c, binding)) {
      // Bound to another connection's data (or a different header): a relayed login.
      throw this.boundTo
        ? new ScramError('not-authorized', 'channel binding does not match this connection', 'channel-binding')
        : new ScramError('not-authorized');
    }
    const proof = Buffer.from(attrs.get('p') ?? '', 'base64');
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
    const storedKey = Buffer.from(creds.storedKey, 'base64');
    const signature = hmac(this.hash, storedKey, authMessage);
    if (proof.length !== signature.length) throw new ScramError('not-authorized');
    const clientKey = xor(proof, signature);
    if (!safeEqual(digest(this.hash, clientKey), storedKey) || isDecoy(creds)) throw new ScramError('not-authorized');
    const serverSig = hmac(this.hash, Buffer.from(creds.serverKey, 'base64'), authMessage);
    return `v=${serverSig.toString('base64')}`;
  }
}
