// Archive ids (XEP-0313 UIDs, XEP-0359 stanza-ids): 11 characters of
// microseconds since the epoch in base32hex, whose order is the time order,
// then 5 random characters. Sorting by id is sorting by time, so one ordered
// index answers both "after this id" and "since this time", and an id says
// nothing about how big an archive is (XEP-0359 §6). Ids made in one process
// strictly increase: two in the same microsecond get consecutive times.
import { randomBytes } from 'node:crypto';

const DIGITS = '0123456789abcdefghijklmnopqrstuv';
const TIME_CHARS = 11;
const RANDOM_CHARS = 5;
export const ARCHIVE_ID_LENGTH = TIME_CHARS + RANDOM_CHARS;

let lastMicros = 0;
let pool = Buffer.alloc(0);
let poolAt = 0;

function encodeTime(micros: number): string {
  // All but the last character change only every 32 µs: kept from the previous call.
  const high = Math.floor(micros / 32);
  if (high !== cachedHigh) {
    let out = '';
    let n = high;
    for (let i = 1; i < TIME_CHARS; i++) {
      out = DIGITS[n % 32]! + out;
      n = Math.floor(n / 32);
    }
    cachedHigh = high;
    cachedPrefix = out;
  }
  return cachedPrefix + DIGITS[micros % 32]!;
}
let cachedHigh = -1;
let cachedPrefix = '';

function randomSuffix(): string {
  if (poolAt + RANDOM_CHARS > pool.length) {
    pool = randomBytes(4096);
    poolAt = 0;
  }
  let out = '';
  for (let i = 0; i < RANDOM_CHARS; i++) out += DIGITS[pool[poolAt++]! & 31];
  return out;
}

/** An archive id and the time (ms) it stands for. */
export interface ArchiveId {
  id: string;
  when: number;
}

/** A new id and the time (ms) it stands for. */
export function newArchiveId(now = Date.now()): ArchiveId {
  let micros = now * 1000;
  if (micros <= lastMicros) micros = lastMicros + 1;
  lastMicros = micros;
  return { id: encodeTime(micros) + randomSuffix(), when: Math.floor(micros / 1000) };
}

/** The time (ms) an id stands for. */
export function archiveIdTime(id: string): number {
  let micros = 0;
  for (let i = 0; i < TIME_CHARS; i++) micros = micros * 32 + DIGITS.indexOf(id[i]!);
  return Math.floor(micros / 1000);
}

/**
 * Makes the next ids sort after `id` (an id stored before a restart): ids
 * stay in order even if the clock was set back meanwhile.
 */
export function seedArchiveIds(id: string): void {
  let micros = 0;
  for (let i = 0; i < TIME_CHARS; i++) micros = micros * 32 + DIGITS.indexOf(id[i]!);
  if (micros > lastMicros) lastMicros = micros;
}

/** The smallest id of anything archived at or after `ms`. */
export function archiveIdFloor(ms: number): string {
  return encodeTime(Math.max(0, Math.floor(ms)) * 1000);
}

/** Whether a string has the shape of an archive id (cheap check before a lookup). */
export function isArchiveId(s: string): boolean {
  return s.length === ARCHIVE_ID_LENGTH && /^[0-9a-v]+$/.test(s);
}
