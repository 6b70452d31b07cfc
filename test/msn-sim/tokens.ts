// Passport 3.0 tickets for the simulator: the security token service
// (RST.srf, in services.ts) issues one compact ticket ("t=...&p=") per
// service domain a client asks for, and for messengerclear.live.com also a
// BinarySecret (proof key) that the MSNP15+ SSO challenge is answered with.
// Tickets say which account and which service they were issued for, so each
// service can refuse a ticket meant for another.

import { createCipheriv, createHmac, randomBytes } from 'node:crypto';

export interface CompactToken {
  email: string;
  domain: string;
  /** Base64 proof key (messengerclear.live.com only). */
  secret?: string;
  expires: number;
}

export class TokenAuthority {
  private readonly tokens = new Map<string, CompactToken>();

  constructor(private readonly lifetimeMs: number) {}

  issue(email: string, domain: string): { token: string; secret?: string } {
    const token = `t=${randomBytes(30).toString('base64url')}&p=${randomBytes(18).toString('base64url')}`;
    const secret = domain === 'messengerclear.live.com' ? randomBytes(24).toString('base64') : undefined;
    this.tokens.set(token, { email: email.toLowerCase(), domain, secret, expires: Date.now() + this.lifetimeMs });
    return { token, secret };
  }

  /** The ticket's record if it is live and was issued for one of `domains`. */
  check(token: string | undefined, domains: readonly string[]): CompactToken | undefined {
    if (!token) return undefined;
    const t = this.tokens.get(token.replace(/&amp;/g, '&'));
    if (!t || t.expires < Date.now() || !domains.includes(t.domain)) return undefined;
    return t;
  }

  /** The RSI service takes the ticket apart (<t> and <p>): find it by its t= part. */
  checkParts(t: string | undefined, domains: readonly string[]): CompactToken | undefined {
    if (!t) return undefined;
    for (const [token, record] of this.tokens) {
      if (token.startsWith(`t=${t}&`) && domains.includes(record.domain) && record.expires >= Date.now()) return record;
    }
    return undefined;
  }
}

// ---- the MSNP15 SSO challenge (MBI_KEY_OLD), checked independently of the client library

function deriveKey(key: Buffer, label: string): Buffer {
  const magic = Buffer.from(label, 'latin1');
  const mac = (d: Buffer) => createHmac('sha1', key).update(d).digest();
  const a = mac(magic);
  const b = mac(Buffer.concat([a, magic]));
  const c = mac(a);
  const d = mac(Buffer.concat([c, magic]));
  return Buffer.concat([b, d.subarray(0, 4)]);
}

/**
 * Checks "USR SSO S <ticket> <response>": the response is a 28-byte header
 * (size 28, CBC mode 1, 3DES 0x6603, SHA1 0x8004, IV length 8, hash length
 * 20, cipher length), then the IV, HMAC-SHA1 of the nonce, and the 3DES-CBC
 * encryption of the nonce, with keys derived from the ticket's proof key.
 */
export function checkSsoResponse(secretB64: string, nonce: string, responseB64: string): boolean {
  const blob = Buffer.from(responseB64, 'base64');
  if (blob.length < 28) return false;
  const head = [0, 4, 8, 12, 16, 20, 24].map((o) => blob.readUInt32LE(o));
  const [size, mode, crypt, hashAlg, ivLen, hashLen, cipherLen] = head as [number, number, number, number, number, number, number];
  if (size !== 28 || mode !== 1 || crypt !== 0x6603 || hashAlg !== 0x8004 || ivLen !== 8 || hashLen !== 20) return false;
  if (blob.length !== 28 + 8 + 20 + cipherLen) return false;
  const iv = blob.subarray(28, 36);
  const hash = blob.subarray(36, 56);
  const cipher = blob.subarray(56);
  const key = Buffer.from(secretB64, 'base64');
  const expectHash = createHmac('sha1', deriveKey(key, 'WS-SecureConversationSESSION KEY HASH')).update(nonce, 'latin1').digest();
  const enc = createCipheriv('des-ede3-cbc', deriveKey(key, 'WS-SecureConversationSESSION KEY ENCRYPTION'), iv);
  const expectCipher = Buffer.concat([enc.update(Buffer.from(nonce, 'latin1')), enc.final()]);
  return hash.equals(expectHash) && cipher.equals(expectCipher);
}
