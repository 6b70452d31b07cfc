// The FAST token store (XEP-0484) on the LevelDB backend, with the clock
// passed in: expiry, rotation (the newer token retires the older once used),
// replay counters, mechanism binding, per-client limits and revocation.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FastTokenStore, tokenHash } from '../../src/storage/fast-tokens.ts';
import { LevelBackend } from '../../src/storage/level.ts';

const DAY = 24 * 60 * 60 * 1000;
const T0 = Date.parse('2026-01-01T00:00:00Z');
const USER = 'alice@localhost';

/** What HT-* checks: an HMAC made with the token matches one made with the stored hash (RFC 2104 key hashing). */
const proverFor = (token: string) => (hash: Buffer) =>
  createHmac('sha256', hash).update('Initiator').digest().equals(createHmac('sha256', token).update('Initiator').digest());

describe('FAST token store', () => {
  const dir = mkdtempSync(join(tmpdir(), 'jabberfly-fast-'));
  let backend: LevelBackend;
  let store: FastTokenStore;
  before(async () => {
    backend = await LevelBackend.open(dir);
    store = new FastTokenStore(backend);
  });
  after(async () => {
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps only a hash, and tokens are longer than the HMAC block so the hash is the HMAC key', async () => {
    const { token } = await store.issue(USER, { id: 'phone' }, 'HT-SHA-256-NONE', 7 * DAY, 32, T0);
    assert.ok(token.length > 64);
    const stored = JSON.stringify(await store.clients(USER));
    assert.ok(!stored.includes(token), 'the token itself is not stored');
    assert.ok(stored.includes(tokenHash(token).toString('base64')));
    const ok = await store.verify(USER, 'phone', 'HT-SHA-256-NONE', proverFor(token), null, T0 + DAY);
    assert.equal(ok.ok, true);
  });

  it('expires, and refuses another mechanism or another client', async () => {
    const { token } = await store.issue(USER, { id: 'tablet' }, 'HT-SHA-256-NONE', 7 * DAY, 32, T0);
    assert.deepEqual(await store.verify(USER, 'tablet', 'HT-SHA-256-EXPR', proverFor(token), null, T0), { ok: false, reason: 'wrong-mechanism' });
    assert.deepEqual(await store.verify(USER, 'phone', 'HT-SHA-256-NONE', proverFor(token), null, T0), { ok: false, reason: 'mismatch' });
    assert.deepEqual(await store.verify(USER, 'tablet', 'HT-SHA-256-NONE', proverFor(token), null, T0 + 7 * DAY), { ok: false, reason: 'expired' });
  });

  it('rotates: the old token works until the new one is used, then only the new one does', async () => {
    const { token: first } = await store.issue(USER, { id: 'laptop' }, 'HT-SHA-256-NONE', 7 * DAY, 32, T0);
    assert.equal((await store.verify(USER, 'laptop', 'HT-SHA-256-NONE', proverFor(first), null, T0 + 1)).ok, true);
    const { token: second } = await store.issue(USER, { id: 'laptop' }, 'HT-SHA-256-NONE', 7 * DAY, 32, T0 + 2);
    // The client may not have received the new one: the old still works.
    assert.equal((await store.verify(USER, 'laptop', 'HT-SHA-256-NONE', proverFor(first), null, T0 + 3)).ok, true);
    const used = await store.verify(USER, 'laptop', 'HT-SHA-256-NONE', proverFor(second), null, T0 + 4);
    assert.ok(used.ok && used.match.wasPending);
    assert.deepEqual(await store.verify(USER, 'laptop', 'HT-SHA-256-NONE', proverFor(first), null, T0 + 5), { ok: false, reason: 'mismatch' });
  });

  it('refuses a count it has seen, takes a higher one', async () => {
    const { token } = await store.issue(USER, { id: 'watch' }, 'HT-SHA-256-NONE', 7 * DAY, 32, T0);
    assert.equal((await store.verify(USER, 'watch', 'HT-SHA-256-NONE', proverFor(token), 5, T0)).ok, true);
    assert.deepEqual(await store.verify(USER, 'watch', 'HT-SHA-256-NONE', proverFor(token), 5, T0), { ok: false, reason: 'replayed' });
    assert.deepEqual(await store.verify(USER, 'watch', 'HT-SHA-256-NONE', proverFor(token), 4, T0), { ok: false, reason: 'replayed' });
    assert.equal((await store.verify(USER, 'watch', 'HT-SHA-256-NONE', proverFor(token), 6, T0)).ok, true);
  });

  it('keeps tokens for at most maxClients clients (the least recently used go), and revokes them all', async () => {
    const bob = 'bob@localhost';
    const tokens: string[] = [];
    for (let i = 0; i < 4; i++) tokens.push((await store.issue(bob, { id: `c${i}` }, 'HT-SHA-256-NONE', 7 * DAY, 3, T0 + i)).token);
    assert.deepEqual(Object.keys(await store.clients(bob)).sort(), ['c1', 'c2', 'c3']);
    assert.deepEqual(await store.verify(bob, 'c0', 'HT-SHA-256-NONE', proverFor(tokens[0]!), null, T0 + 10), { ok: false, reason: 'no-token' });
    await store.invalidate(bob, 'c1');
    assert.deepEqual(Object.keys(await store.clients(bob)).sort(), ['c2', 'c3']);
    await store.revokeAll(bob);
    assert.deepEqual(await store.clients(bob), {});
    assert.deepEqual(await store.verify(bob, 'c3', 'HT-SHA-256-NONE', proverFor(tokens[3]!), null, T0 + 10), { ok: false, reason: 'no-token' });
  });
});
