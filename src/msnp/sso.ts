/**
 * MSNP15+ single sign-on: the answer to the notification server's
 * "USR trid SSO S MBI_KEY_OLD <nonce>" policy challenge (documented as the
 * MBI_KEY / RPS challenge). The key is the BinarySecret the security token
 * service returned with the messengerclear.live.com token; two keys are
 * derived from it (WS-SecureConversation style), the nonce is signed with
 * HMAC-SHA1 under one and encrypted with 3DES-CBC under the other, and the
 * three parts travel in a small little-endian header, base64-encoded.
 */
import { createCipheriv, createHmac, randomBytes } from 'node:crypto';

const CRYPT_MODE_CBC = 1;
const CALG_3DES = 0x6603;
const CALG_SHA1 = 0x8004;

/** Derives a 24-byte key from `key` and a label. */
export function deriveSsoKey(key: Buffer, label: string): Buffer {
  const magic = Buffer.from(label, 'latin1');
  const hmac = (data: Buffer) => createHmac('sha1', key).update(data).digest();
  const h1 = hmac(magic);
  const h2 = hmac(Buffer.concat([h1, magic]));
  const h3 = hmac(h1);
  const h4 = hmac(Buffer.concat([h3, magic]));
  return Buffer.concat([h2, h4.subarray(0, 4)]);
}

/** 3DES-CBC with PKCS#5 padding. */
export function tripleDesCbc(key: Buffer, iv: Buffer, data: Buffer): Buffer {
  const cipher = createCipheriv('des-ede3-cbc', key, iv);
  return Buffer.concat([cipher.update(data), cipher.final()]);
}

/** The base64 response blob for USR SSO S. `iv` is random unless given (tests). */
export function mbiKeyResponse(binarySecret: string, nonce: string, iv: Buffer = randomBytes(8)): string {
  const key = Buffer.from(binarySecret, 'base64');
  const hashKey = deriveSsoKey(key, 'WS-SecureConversationSESSION KEY HASH');
  const cryptKey = deriveSsoKey(key, 'WS-SecureConversationSESSION KEY ENCRYPTION');
  const nonceBytes = Buffer.from(nonce, 'latin1');
  const hash = createHmac('sha1', hashKey).update(nonceBytes).digest();
  const cipher = tripleDesCbc(cryptKey, iv, nonceBytes);
  const header = Buffer.alloc(28);
  const fields = [28, CRYPT_MODE_CBC, CALG_3DES, CALG_SHA1, iv.length, hash.length, cipher.length];
  for (const [i, v] of fields.entries()) header.writeUInt32LE(v, i * 4);
  return Buffer.concat([header, iv, hash, cipher]).toString('base64');
}
