// Server Dialback keys (XEP-0220 with XEP-0185's recommended generation):
// key = HEX(HMAC-SHA256(SHA256(secret), receiving + ' ' + originating + ' ' + streamId)).
// The secret is random, made on first start and kept in storage, so keys
// handed out before a restart still verify after it (a peer may be in the
// middle of checking one).
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { StorageBackend } from '../storage/types.ts';

const STORE = 'server-secrets';
const KEY = 'dialback';

export class DialbackKeys {
  private constructor(private readonly hashedSecret: Buffer) {}

  static async load(storage: StorageBackend): Promise<DialbackKeys> {
    const kv = storage.keyValue<string>(STORE);
    let secret = await kv.get(KEY);
    if (!secret) {
      secret = randomBytes(32).toString('hex');
      await kv.set(KEY, secret);
    }
    return new DialbackKeys(createHash('sha256').update(secret).digest());
  }

  /** The key the originating server sends in <db:result/>. */
  key(receiving: string, originating: string, streamId: string): string {
    return createHmac('sha256', this.hashedSecret)
      .update(`${receiving} ${originating} ${streamId}`)
      .digest('hex');
  }

  /** Whether a key we are asked about (<db:verify/>) is one we made. */
  verify(receiving: string, originating: string, streamId: string, key: string): boolean {
    const expected = Buffer.from(this.key(receiving, originating, streamId));
    const given = Buffer.from(key.trim());
    return given.length === expected.length && timingSafeEqual(given, expected);
  }
}
