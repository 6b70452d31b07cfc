/**
 * Answers to the notification server's CHL challenges (sent back with QRY).
 *
 * MSNP8-10 use a plain MD5 of challenge + private key. MSNP11 replaced it
 * with a keyed hash built from the MD5 and the product id; the server drops
 * clients that answer with the wrong form (error 540), so the form must
 * follow the negotiated protocol version.
 */
import { createHash } from 'node:crypto';

export interface ChallengeKeys {
  /** Public key / product id, sent as the QRY argument. */
  productId: string;
  /** Private key mixed into the hash, never sent. */
  productKey: string;
}

/** MSN Messenger 7.0 keys, valid for MSNP11. */
export const MSNP11_KEYS: ChallengeKeys = { productId: 'PROD0090YUAUV{2B', productKey: 'YMM8C_H7KCQ2S_KL' };
/** MSN Messenger 5/6 keys, valid for MSNP8-10. */
export const MSNP8_KEYS: ChallengeKeys = { productId: 'msmsgs@msnmsgr.com', productKey: 'Q1P7W2E4J9R8U3S5' };

/** MSNP8-10: lowercase hex MD5 of challenge followed by the private key. */
export function md5Challenge(challenge: string, productKey: string = MSNP8_KEYS.productKey): string {
  return createHash('md5')
    .update(challenge + productKey, 'latin1')
    .digest('hex');
}

const MASK31 = 0x7fffffffn;

/** MSNP11+: the keyed challenge response, 32 lowercase hex characters. */
export function msnp11Challenge(challenge: string, keys: ChallengeKeys = MSNP11_KEYS): string {
  const digest = createHash('md5')
    .update(challenge + keys.productKey, 'latin1')
    .digest();
  // The MD5 read as four little-endian 32-bit words, each cut to 31 bits.
  const md5Words: bigint[] = [0, 4, 8, 12].map((o) => BigInt(digest.readUInt32LE(o)) & MASK31);

  // challenge + product id, right-padded with '0' to a multiple of 8 bytes,
  // read as little-endian 32-bit words.
  let text = challenge + keys.productId;
  if (text.length % 8 !== 0) text = text.padEnd(text.length + (8 - (text.length % 8)), '0');
  const textBytes = Buffer.from(text, 'latin1');
  const words: bigint[] = [];
  for (let i = 0; i < textBytes.length; i += 4) words.push(BigInt(textBytes.readUInt32LE(i)) & MASK31);

  const [a, b, c, d] = md5Words as [bigint, bigint, bigint, bigint];
  let high = 0n;
  let low = 0n;
  for (let i = 0; i < words.length; i += 2) {
    let temp = ((words[i] as bigint) * 0x0e79a9c1n) % MASK31;
    temp += high;
    temp = (a * temp + b) % MASK31;
    high = ((words[i + 1] as bigint) + temp) % MASK31;
    high = (c * high + d) % MASK31;
    low += high + temp;
  }
  high = (high + b) % MASK31;
  low = (low + d) % MASK31;

  // XOR the 64-bit key (high, low as little-endian dwords) over both halves of the MD5.
  const out = Buffer.from(digest);
  const h = Number(high);
  const l = Number(low);
  for (const base of [0, 8]) {
    out.writeUInt32LE((out.readUInt32LE(base) ^ h) >>> 0, base);
    out.writeUInt32LE((out.readUInt32LE(base + 4) ^ l) >>> 0, base + 4);
  }
  return out.toString('hex');
}

/** Windows Live Messenger 8.0/8.1 keys (MSNP13-14). */
export const MSNP13_KEYS: ChallengeKeys = { productId: 'PROD01065C%ZFN6F', productKey: 'O4BG@C7BWLYQX?5G' };
/** Windows Live Messenger 8.5 keys (MSNP15; accepted up to MSNP17). */
export const MSNP15_KEYS: ChallengeKeys = { productId: 'PROD0119GSJUC$18', productKey: 'ILTXC!4IXB5FB*PX' };
/** Windows Live Messenger 2009 keys (MSNP18). */
export const MSNP18_KEYS: ChallengeKeys = { productId: 'PROD0120PW!CCV9@', productKey: 'C1BX{V4W}Q3*10SM' };

/** The product keys a client of that protocol version answers with. */
export function challengeKeys(n: number): ChallengeKeys {
  if (n >= 18) return MSNP18_KEYS;
  if (n >= 15) return MSNP15_KEYS;
  if (n >= 13) return MSNP13_KEYS;
  if (n >= 11) return MSNP11_KEYS;
  return MSNP8_KEYS;
}

/** Picks the algorithm and keys for a negotiated protocol version ("MSNP11", "MSNP9", ...). */
export function solveChallenge(version: string, challenge: string): { productId: string; response: string } {
  const n = Number(version.replace(/^MSNP/i, ''));
  const keys = challengeKeys(n);
  if (n >= 11) return { productId: keys.productId, response: msnp11Challenge(challenge, keys) };
  return { productId: keys.productId, response: md5Challenge(challenge, keys.productKey) };
}
