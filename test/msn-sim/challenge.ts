// CHL/QRY challenge handling for the simulated notification server.
//
// The server sends `CHL 0 <challenge>`; the client must answer with
// `QRY <trid> <product-id> 32\r\n<32 hex chars>`. Two answer algorithms exist:
//  - MSNP6..MSNP10 ("basic"): md5(challenge + private key), lowercase hex.
//  - MSNP11 and later ("advanced"): a keyed hash mixing the md5 above with a
//    64-bit value derived from challenge + product id (documented on the msnp
//    wiki QRY page and the MSNP11 Challenges page).
// The simulator really verifies answers, so a client with a wrong algorithm or
// a wrong key pair is disconnected with 540, like the real service did.

import { createHash, randomInt } from 'node:crypto';

/** Product id / private key pairs accepted with the MSNP11 algorithm. */
export const MSNP11_KEY_PAIRS: ReadonlyMap<string, string> = new Map([
  ['PROD0090YUAUV{2B', 'YMM8C_H7KCQ2S_KL'],
  ['PROD00974#MT*RC2', 'LMCVO*18PQJ3H!K3'],
  ['PROD0101{0RM?UBW', 'CFHUR$52U_{VIX5T'],
  ['PROD0104U6VVM{UJ', 'VK67B}379XYM5}$T'],
  ['PROD01065C%ZFN6F', 'O4BG@C7BWLYQX?5G'],
  ['PROD0112J1LW7%NB', 'RH96F{PHI8PPX_TJ'],
  ['PROD0113H11T8$X_', 'RG@XY*28Q5QHS%Q5'],
  ['PROD0114ES4Z%Q5W', 'PK}_A_0N_K%O?A9S'],
  ['PROD0118R6%2WYOS', 'YIXPX@5I2P0UT*LK'],
  ['PROD0119GSJUC$18', 'ILTXC!4IXB5FB*PX'],
  ['PROD0120PW!CCV9@', 'C1BX{V4W}Q3*10SM'],
]);

/**
 * The newest protocol each MSNP11-style product id belongs to: a client of a
 * later version answering with an older Messenger's keys is refused, as the
 * real service did (the pairs come from the Messenger builds that spoke them).
 */
const MAX_PROTOCOL: ReadonlyMap<string, number> = new Map([
  ['PROD0090YUAUV{2B', 12],
  ['PROD00974#MT*RC2', 12],
  ['PROD0101{0RM?UBW', 12],
  ['PROD0104U6VVM{UJ', 12],
  ['PROD01065C%ZFN6F', 14],
  ['PROD0112J1LW7%NB', 14],
]);

/** Public / private key pairs accepted with the MSNP6-MSNP10 md5 algorithm. */
export const LEGACY_KEY_PAIRS: ReadonlyMap<string, string> = new Map([
  ['msmsgs@msnmsgr.com', 'Q1P7W2E4J9R8U3S5'],
  ['PROD0038W!61ZTF9', 'VT6PX?UQTM4WM%YR'],
  ['PROD0058#7IL2{QD', 'QHDCY@7R1TB6W?5B'],
  ['PROD0061VRRZH@4F', 'JXQ6J@TUOGYV@N0M'],
  ['PROD00504RLUG%WL', 'I2EBK%PYNLZL5_J4'],
  ['PROD0076ENE8*@AW', 'CEQJ8}OE0!WTSWII'],
]);

/** MSNP6..MSNP10 answer: plain md5 of challenge + private key. */
export function legacyChallengeResponse(challenge: string, privateKey: string): string {
  return createHash('md5')
    .update(challenge + privateKey, 'latin1')
    .digest('hex');
}

const MASK31 = 0x7fffffffn;

/** MSNP11+ answer, returned as 32 lowercase hex characters. */
export function msnp11ChallengeResponse(challenge: string, productId: string, productKey: string): string {
  const digest = createHash('md5')
    .update(challenge + productKey, 'latin1')
    .digest();
  // The digest is read as four little-endian 32-bit words; the hashing below
  // uses them with the top bit cleared, the final XOR uses them unmasked.
  const md5Words: bigint[] = [];
  for (let i = 0; i < 4; i++) md5Words.push(BigInt(digest.readUInt32LE(i * 4)));
  const keyWords = md5Words.map((w) => w & MASK31);

  // challenge + product id, right-padded with ASCII '0' to a multiple of 8.
  let text = challenge + productId;
  const rem = text.length % 8;
  if (rem !== 0) text += '0'.repeat(8 - rem);
  const textBytes = Buffer.from(text, 'latin1');
  const parts: bigint[] = [];
  for (let i = 0; i < textBytes.length; i += 4) parts.push(BigInt(textBytes.readUInt32LE(i)) & MASK31);

  let high = 0n;
  let low = 0n;
  for (let i = 0; i < parts.length; i += 2) {
    let temp = (parts[i]! * 0x0e79a9c1n) % MASK31;
    temp += high;
    temp = keyWords[0]! * temp + keyWords[1]!;
    temp %= MASK31;
    high = (parts[i + 1]! + temp) % MASK31;
    high = keyWords[2]! * high + keyWords[3]!;
    high %= MASK31;
    low += high + temp;
  }
  high = (high + keyWords[1]!) % MASK31;
  low = (low + keyWords[3]!) % MASK31;

  const out = Buffer.alloc(16);
  out.writeUInt32LE(Number(md5Words[0]! ^ high), 0);
  out.writeUInt32LE(Number(md5Words[1]! ^ low), 4);
  out.writeUInt32LE(Number(md5Words[2]! ^ high), 8);
  out.writeUInt32LE(Number(md5Words[3]! ^ low), 12);
  return out.toString('hex');
}

/**
 * Checks a QRY answer for one of the challenges the session was given.
 * `protocolVersion` picks the algorithm; unknown product ids always fail.
 */
export function verifyChallengeResponse(
  protocolVersion: number,
  challenges: readonly string[],
  productId: string,
  answer: string,
): boolean {
  const normalized = answer.trim().toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(normalized)) return false;
  if (protocolVersion >= 11) {
    const key = MSNP11_KEY_PAIRS.get(productId);
    if (key === undefined) return false;
    if (protocolVersion > (MAX_PROTOCOL.get(productId) ?? 21)) return false;
    return challenges.some((c) => msnp11ChallengeResponse(c, productId, key) === normalized);
  }
  const key = LEGACY_KEY_PAIRS.get(productId);
  if (key === undefined) return false;
  return challenges.some((c) => legacyChallengeResponse(c, key) === normalized);
}

/** A 20-digit numeric challenge, the shape the real servers sent. */
export function randomChallenge(): string {
  let s = String(randomInt(1, 10));
  for (let i = 0; i < 19; i++) s += String(randomInt(0, 10));
  return s;
}
