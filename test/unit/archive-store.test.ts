// The LevelDB archive store on its own: ordered ids, ranges by id and by
// time, the correspondent index, reverse reads, expiry and removal.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { archiveIdFloor, isArchiveId, newArchiveId } from '../../src/storage/archive-id.ts';
import { LevelBackend } from '../../src/storage/level.ts';
import type { ArchiveEntry, ArchiveRange, ArchiveStore } from '../../src/storage/types.ts';

const ALICE = 'alice@example.org';
const BOB = 'bob@example.org';

async function all(store: ArchiveStore, owner: string, r: ArchiveRange = {}): Promise<ArchiveEntry[]> {
  const out: ArchiveEntry[] = [];
  for await (const e of store.query(owner, r)) out.push(e);
  return out;
}

describe('archive store (LevelDB)', () => {
  let dir: string;
  let backend: LevelBackend;
  let store: ArchiveStore;
  // 100 entries for alice, 1 second apart, with bob, carol and dave in turn,
  // appended in two turns (so in segments of 32, 28, 32 and 8 entries).
  const t0 = Date.UTC(2026, 0, 1);
  const entries: ArchiveEntry[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jabberfly-archive-'));
    backend = await LevelBackend.open(dir);
    store = backend.archive('test');
    // Ids are monotonic within a process: bob's (older) entry is made first.
    const forBob = { ...newArchiveId(t0 - 500), with: ALICE, xml: '<message><body>for bob</body></message>' };
    const peers = ['bob@example.org', 'carol@example.org', 'dave@example.org'];
    for (let i = 0; i < 100; i++) {
      const { id, when } = newArchiveId(t0 + i * 1000);
      entries.push({ id, when, with: peers[i % 3]!, xml: `<message><body>m${i}</body></message>` });
    }
    // Appended in one turn: one batch, one promise for all.
    const promises = entries.slice(0, 60).map((e) => store.append(ALICE, e));
    assert.equal(new Set(promises).size, 1, 'one event-loop turn of appends is one batch');
    await Promise.all(promises);
    await Promise.all(entries.slice(60).map((e) => store.append(ALICE, e)));
    await store.append(BOB, forBob);
  });
  after(async () => {
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('makes ids that sort in time order and say nothing else', () => {
    const ids = Array.from({ length: 1000 }, () => newArchiveId().id);
    assert.deepEqual([...ids].sort(), ids, 'strictly increasing within a process');
    assert.equal(new Set(ids).size, ids.length);
    for (const id of ids) assert.ok(isArchiveId(id), id);
    assert.ok(archiveIdFloor(t0) <= entries[0]!.id && entries[0]!.id < archiveIdFloor(t0 + 1));
    assert.ok(!isArchiveId('nope') && !isArchiveId('ZZZZZZZZZZZZZZZZ'));
  });

  it('reads an archive in order, and newest first', async () => {
    assert.deepEqual(
      (await all(store, ALICE)).map((e) => e.xml),
      entries.map((e) => e.xml),
    );
    const newest = await all(store, ALICE, { reverse: true, limit: 3 });
    assert.deepEqual(
      newest.map((e) => e.id),
      entries.slice(-3).reverse().map((e) => e.id),
    );
    assert.deepEqual(await all(store, 'nobody@example.org'), []);
  });

  it('pages by id (exclusive) and by time (inclusive)', async () => {
    const page = await all(store, ALICE, { afterId: entries[4]!.id, beforeId: entries[9]!.id });
    assert.deepEqual(
      page.map((e) => e.id),
      entries.slice(5, 9).map((e) => e.id),
    );
    // Across segment boundaries, both ways.
    const across = await all(store, ALICE, { afterId: entries[29]!.id, beforeId: entries[62]!.id });
    assert.deepEqual(
      across.map((e) => e.id),
      entries.slice(30, 62).map((e) => e.id),
    );
    const back = await all(store, ALICE, { afterId: entries[29]!.id, beforeId: entries[62]!.id, reverse: true, limit: 5 });
    assert.deepEqual(
      back.map((e) => e.id),
      entries.slice(57, 62).reverse().map((e) => e.id),
    );
    const byTime = await all(store, ALICE, { start: entries[10]!.when, end: entries[12]!.when });
    assert.deepEqual(
      byTime.map((e) => e.id),
      entries.slice(10, 13).map((e) => e.id),
    );
    // The tighter of the two bounds wins on each side.
    const both = await all(store, ALICE, { start: entries[3]!.when, afterId: entries[5]!.id, end: entries[8]!.when, beforeId: entries[20]!.id });
    assert.deepEqual(
      both.map((e) => e.id),
      entries.slice(6, 9).map((e) => e.id),
    );
  });

  it('answers with-queries from the correspondent index', async () => {
    const carol = await all(store, ALICE, { with: 'carol@example.org' });
    assert.deepEqual(
      carol.map((e) => e.id),
      entries.filter((e) => e.with === 'carol@example.org').map((e) => e.id),
    );
    const lastTwo = await all(store, ALICE, { with: 'carol@example.org', reverse: true, limit: 2, beforeId: entries[28]!.id });
    assert.deepEqual(
      lastTwo.map((e) => e.xml),
      ['<message><body>m25</body></message>', '<message><body>m22</body></message>'],
    );
    const window = await all(store, ALICE, { with: 'dave@example.org', start: entries[30]!.when, end: entries[70]!.when });
    assert.deepEqual(
      window.map((e) => e.xml),
      entries.slice(30, 71).filter((e) => e.with === 'dave@example.org').map((e) => e.xml),
    );
  });

  it('gets entries by id and says which are missing', async () => {
    const near = entries[40]!.id;
    const never = near.slice(0, 15) + (near.endsWith('0') ? '1' : '0');
    const got = await store.get(ALICE, [entries[7]!.id, 'missing', entries[2]!.id, entries[95]!.id, never]);
    assert.equal(got[0]?.xml, entries[7]!.xml);
    assert.equal(got[1], undefined);
    assert.equal(got[2]?.with, entries[2]!.with);
    assert.equal(got[3]?.when, entries[95]!.when);
    assert.equal(got[4], undefined, 'an id that was never made is missing');
    assert.equal((await store.get(BOB, [entries[7]!.id]))[0], undefined, 'archives are separate');
  });

  it('sees an append in a read started right after it', async () => {
    const { id, when } = newArchiveId();
    void store.append(BOB, { id, when, with: 'eve@example.org', xml: '<message><body>fresh</body></message>' });
    const [got] = await store.get(BOB, [id]);
    assert.equal(got?.xml, '<message><body>fresh</body></message>');
  });

  it('expires old entries from every archive, from both indexes', async () => {
    // A bound inside the second segment: the first goes whole, the second is cut.
    const removed = await store.expire(entries[40]!.when);
    // alice's first forty, and bob's old entry (his fresh one stays).
    assert.equal(removed, 41);
    const left = await all(store, ALICE);
    assert.deepEqual(
      left.map((e) => e.id),
      entries.slice(40).map((e) => e.id),
    );
    const bobIndex = await all(store, ALICE, { with: 'bob@example.org' });
    assert.deepEqual(
      bobIndex.map((e) => e.id),
      entries.slice(40).filter((e) => e.with === 'bob@example.org').map((e) => e.id),
    );
    assert.equal((await store.get(ALICE, [entries[39]!.id, entries[41]!.id]))[0], undefined);
    assert.equal((await all(store, BOB)).length, 1, "bob's recent entry stays");
  });

  it('keeps ids in order across a restart even if the clock went back', async () => {
    const { id } = newArchiveId(Date.now() + 3_600_000);
    await store.append(BOB, { id, when: Date.now(), with: ALICE, xml: '<message/>' });
    await backend.close();
    backend = await LevelBackend.open(dir);
    store = backend.archive('test');
    assert.ok(newArchiveId().id > id, 'the next id sorts after the highest stored one');
  });

  it('removes one owner completely', async () => {
    await store.removeOwner(ALICE);
    assert.deepEqual(await all(store, ALICE), []);
    assert.deepEqual(await all(store, ALICE, { with: 'carol@example.org' }), []);
    assert.equal((await all(store, BOB)).length, 2);
  });
});
