// XEP-0114 §3: the component proves it knows the shared secret by sending
// the hex SHA-1 of the stream id the server chose followed by the secret.
// Both sides of jabberfly use this: the component listener checks it, the
// transport's component connection computes it.
import { createHash, timingSafeEqual } from 'node:crypto';

export function handshakeDigest(streamId: string, secret: string): string {
  return createHash('sha1').update(streamId + secret, 'utf8').digest('hex');
}

/** Whether a received handshake is right; compared in constant time, case-insensitively. */
export function handshakeMatches(received: string, streamId: string, secret: string): boolean {
  const expected = Buffer.from(handshakeDigest(streamId, secret), 'utf8');
  const got = Buffer.from(received.trim().toLowerCase(), 'utf8');
  return got.length === expected.length && timingSafeEqual(got, expected);
}
