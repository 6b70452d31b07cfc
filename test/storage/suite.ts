// The storage seam's contract, run against each backend (level-backend and
// pg-backend test files): every kind of store in src/storage/types.ts,
// the typed stores built on them, account deletion across stores, and the
// durability barrier's tracking of the backend's operations.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { newArchiveId } from '../../src/storage/archive-id.ts';
import { DurabilityBarrier } from '../../src/storage/durability.ts';
import { trackedBackend } from '../../src/storage/tracked-backend.ts';
import type { ArchiveEntry, ArchiveRange, ArchiveStore, StorageBackend, UploadRecord } from '../../src/storage/types.ts';
import { deleteUserData } from '../../src/storage/user-data.ts';
import { buildConfig } from '../../src/config/load.ts';
import type { InboundStream } from '../../src/stream/inbound-context.ts';
import { OfflineStore } from '../../src/storage/offline.ts';
import { RosterStore } from '../../src/storage/roster.ts';

export interface BackendUnderTest {
  open(): Promise<StorageBackend>;
  /** Closes and opens the same store again (what survives a restart). */
  reopen(b: StorageBackend): Promise<StorageBackend>;
  cleanup(): Promise<void>;
  /** Whether a failing transaction leaves nothing behind (PostgreSQL). */
  atomic: boolean;
}

async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const range = (store: ArchiveStore, owner: string, r: ArchiveRange = {}) => all(store.query(owner, r));

export function storageSuite(name: string, under: BackendUnderTest): void {
  describe(`storage seam on ${name}`, () => {
    let b: StorageBackend;
    before(async () => {
      b = await under.open();
    });
    after(async () => {
      await b.close();
      await under.cleanup();
    });

    it('key-value stores: get, set, replace, delete, keys in order, stores apart', async () => {
      const kv = b.keyValue<{ n: number; s?: string }>('kv-test');
      const other = b.keyValue<string>('kv-other');
      assert.equal(await kv.get('a@x'), undefined);
      await kv.set('b@x', { n: 1 });
      await kv.set('a@x', { n: 2, s: 'ünïcode ✓ "quoted" \\ <xml/>' });
      await kv.set('b@x', { n: 3 });
      await other.set('a@x', 'other');
      assert.deepEqual(await kv.get('b@x'), { n: 3 });
      assert.deepEqual(await kv.get('a@x'), { n: 2, s: 'ünïcode ✓ "quoted" \\ <xml/>' });
      assert.deepEqual(await all(kv.keys()), ['a@x', 'b@x']);
      await kv.delete('a@x');
      await kv.delete('never@x');
      assert.equal(await kv.get('a@x'), undefined);
      assert.equal(await other.get('a@x'), 'other');
      // add: the first value stays, every caller learns which it is.
      const added = await Promise.all(['one', 'two', 'three'].map((v) => other.add('secret', v)));
      assert.deepEqual(added, ['one', 'one', 'one']);
      assert.equal(await other.get('secret'), 'one');
      // Writes not awaited one by one land in the order made.
      const last = b.keyValue<number>('kv-order');
      await Promise.all(Array.from({ length: 20 }, (_, i) => last.set('k', i)));
      assert.equal(await last.get('k'), 19);
      // Many keys: listing pages through them all.
      const many = b.keyValue<number>('kv-many');
      await Promise.all(Array.from({ length: 1203 }, (_, i) => many.set(`u${String(i).padStart(5, '0')}@x`, i)));
      const keys = await all(many.keys());
      assert.equal(keys.length, 1203);
      assert.deepEqual(keys, [...keys].sort());
    });

    it('list stores: append in order, count, shift some or all', async () => {
      const list = b.list<string>('list-test');
      for (let i = 0; i < 5; i++) await list.append('bob@x', `<message id="${i}"/>`);
      await list.append('carol@x', 'c');
      assert.equal(await list.count('bob@x'), 5);
      assert.deepEqual(await list.list('bob@x'), [0, 1, 2, 3, 4].map((i) => `<message id="${i}"/>`));
      await list.shift('bob@x', 2);
      assert.deepEqual(await list.list('bob@x'), [2, 3, 4].map((i) => `<message id="${i}"/>`));
      await list.shift('bob@x');
      assert.equal(await list.count('bob@x'), 0);
      assert.deepEqual(await list.list('carol@x'), ['c']);
    });

    it('pubsub: nodes, items newest last, replace moves to newest, limits, delete', async () => {
      const ps = b.pubsub('ps-test');
      const svc = 'alice@x';
      const node = (n: string) => ({ node: n, config: { max: 3 }, affiliations: { [svc]: 'owner' }, subscriptions: {}, created: 1 });
      await ps.putNode(svc, node('urn:b'));
      await ps.putNode(svc, node('urn:a'));
      await ps.putNode('bob@x', node('urn:a'));
      assert.deepEqual(
        (await ps.nodes(svc)).map((n) => n.node),
        ['urn:a', 'urn:b'],
      );
      assert.deepEqual((await ps.getNode(svc, 'urn:a'))?.affiliations, { [svc]: 'owner' });
      const item = (id: string) => ({ id, publisher: svc, payload: `<p>${id}</p>`, published: 5 });
      for (const id of ['1', '2', '3']) assert.deepEqual(await ps.putItem(svc, 'urn:a', item(id), 3), []);
      assert.deepEqual(await ps.putItem(svc, 'urn:a', item('4'), 3), ['1'], 'the oldest beyond the limit goes');
      assert.deepEqual(await ps.putItem(svc, 'urn:a', item('2'), 3), [], 're-publishing an id replaces it');
      assert.deepEqual(
        (await ps.items(svc, 'urn:a')).map((i) => i.id),
        ['3', '4', '2'],
        're-published item is the newest',
      );
      assert.deepEqual(
        (await ps.items(svc, 'urn:a', { max: 2 })).map((i) => i.id),
        ['4', '2'],
      );
      assert.deepEqual(
        (await ps.items(svc, 'urn:a', { ids: ['2', 'nope', '3'] })).map((i) => i.payload),
        ['<p>3</p>', '<p>2</p>'],
      );
      assert.deepEqual(await ps.trim(svc, 'urn:a', 1), ['4', '3']);
      assert.equal(await ps.deleteItem(svc, 'urn:a', '2'), true);
      assert.equal(await ps.deleteItem(svc, 'urn:a', '2'), false);
      // Concurrent publishes to one node keep exactly `keep` items.
      await Promise.all(Array.from({ length: 12 }, (_, i) => ps.putItem(svc, 'urn:b', item(`c${i}`), 5)));
      assert.equal((await ps.items(svc, 'urn:b')).length, 5);
      await ps.putItem('bob@x', 'urn:a', item('bob'), 3);
      await ps.deleteNode(svc, 'urn:b');
      assert.equal(await ps.getNode(svc, 'urn:b'), undefined);
      assert.deepEqual(await ps.items(svc, 'urn:b'), []);
      await ps.deleteService(svc);
      assert.deepEqual(await ps.nodes(svc), []);
      assert.equal((await ps.items('bob@x', 'urn:a')).length, 1, "another service's items stay");
    });

    it('archives: order, id and time ranges, correspondent, reverse, get, expiry, removal', async () => {
      const store = b.archive('archive-test');
      const t0 = Date.UTC(2026, 0, 1);
      const peers = ['bob@x', 'carol@x', 'dave@x'];
      const entries: ArchiveEntry[] = [];
      for (let i = 0; i < 150; i++) {
        const { id, when } = newArchiveId(t0 + i * 1000);
        entries.push({ id, when, with: peers[i % 3]!, xml: `<message><body>m${i} ✓</body></message>` });
      }
      await Promise.all(entries.map((e) => store.append('alice@x', e)));
      const fresh = newArchiveId();
      await store.append('bob@x', { ...fresh, with: 'alice@x', xml: '<message/>' });
      const ids = (xs: ArchiveEntry[]) => xs.map((e) => e.id);
      assert.deepEqual(ids(await range(store, 'alice@x')), ids(entries));
      assert.deepEqual(ids(await range(store, 'alice@x', { reverse: true, limit: 3 })), ids(entries.slice(-3).reverse()));
      assert.deepEqual(ids(await range(store, 'alice@x', { afterId: entries[29]!.id, beforeId: entries[132]!.id })), ids(entries.slice(30, 132)));
      assert.deepEqual(
        ids(await range(store, 'alice@x', { afterId: entries[29]!.id, beforeId: entries[132]!.id, reverse: true, limit: 105 })),
        ids(entries.slice(30, 132).reverse()),
      );
      assert.deepEqual(ids(await range(store, 'alice@x', { start: entries[10]!.when, end: entries[12]!.when })), ids(entries.slice(10, 13)));
      assert.deepEqual(
        ids(await range(store, 'alice@x', { with: 'carol@x', reverse: true, limit: 2, beforeId: entries[28]!.id })),
        [entries[25]!.id, entries[22]!.id],
      );
      assert.deepEqual(
        ids(await range(store, 'alice@x', { with: 'dave@x' })),
        ids(entries.filter((e) => e.with === 'dave@x')),
      );
      const got = await store.get('alice@x', [entries[7]!.id, 'missing', entries[140]!.id]);
      assert.equal(got[0]?.xml, entries[7]!.xml);
      assert.equal(got[1], undefined);
      assert.equal(got[2]?.when, entries[140]!.when);
      // An append is seen by a read started right after it.
      const next = newArchiveId();
      void store.append('bob@x', { ...next, with: 'eve@x', xml: '<message><body>fresh</body></message>' });
      assert.equal((await store.get('bob@x', [next.id]))[0]?.xml, '<message><body>fresh</body></message>');
      assert.equal(await store.expire(entries[40]!.when), 40);
      assert.deepEqual(ids(await range(store, 'alice@x')), ids(entries.slice(40)));
      await store.removeOwner('alice@x');
      assert.deepEqual(await range(store, 'alice@x'), []);
      assert.equal((await range(store, 'bob@x')).length, 2);
    });

    it('upload records: by id, by owner, by expiry, replace moves the indexes', async () => {
      const up = b.uploadRecords();
      const rec = (id: string, owner: string, expires: number | null): UploadRecord => ({
        id,
        owner,
        filename: `${id}.png`,
        size: 1000,
        contentType: 'image/png',
        created: 1,
        state: 'pending',
        expires,
      });
      await up.put(rec('AAAAAAAAAAAAAAAAAAAAAAAA', 'alice@x', 300));
      await up.put(rec('BBBBBBBBBBBBBBBBBBBBBBBB', 'alice@x', 100));
      await up.put(rec('CCCCCCCCCCCCCCCCCCCCCCCC', 'bob@x', null));
      assert.deepEqual(await up.get('BBBBBBBBBBBBBBBBBBBBBBBB'), rec('BBBBBBBBBBBBBBBBBBBBBBBB', 'alice@x', 100));
      assert.deepEqual(
        (await up.byOwner('alice@x')).map((r) => r.id),
        ['AAAAAAAAAAAAAAAAAAAAAAAA', 'BBBBBBBBBBBBBBBBBBBBBBBB'],
      );
      assert.deepEqual(
        (await up.expiring(1000, 10)).map((r) => r.id),
        ['BBBBBBBBBBBBBBBBBBBBBBBB', 'AAAAAAAAAAAAAAAAAAAAAAAA'],
      );
      await up.put({ ...rec('BBBBBBBBBBBBBBBBBBBBBBBB', 'alice@x', null), state: 'stored' });
      assert.deepEqual(
        (await up.expiring(1000, 10)).map((r) => r.id),
        ['AAAAAAAAAAAAAAAAAAAAAAAA'],
      );
      assert.equal((await up.get('BBBBBBBBBBBBBBBBBBBBBBBB'))?.state, 'stored');
      await up.delete('AAAAAAAAAAAAAAAAAAAAAAAA');
      assert.deepEqual(
        (await up.byOwner('alice@x')).map((r) => r.id),
        ['BBBBBBBBBBBBBBBBBBBBBBBB'],
      );
      assert.deepEqual(await up.expiring(1000, 10), []);
    });

    it("deleting a user's data empties every per-user store and leaves others' alone", async () => {
      const config = buildConfig({ upload: { path: '/nonexistent-jabberfly-upload-dir' } });
      for (const who of ['gone@x', 'kept@x']) {
        await b.keyValue('roster').set(who, { version: 1, items: [], pending: [] });
        await b.keyValue('vcard').set(who, '<vCard/>');
        await b.list('offline').append(who, '<message/>');
        await b.pubsub('pep').putNode(who, { node: 'n', config: {}, affiliations: {}, subscriptions: {}, created: 1 });
        await b.archive('mam').append(who, { ...newArchiveId(), with: 'x@x', xml: '<message/>' });
      }
      await deleteUserData(b, 'gone@x', config);
      for (const [who, present] of [
        ['gone@x', false],
        ['kept@x', true],
      ] as const) {
        assert.equal((await b.keyValue('roster').get(who)) !== undefined, present, `roster of ${who}`);
        assert.equal((await b.keyValue('vcard').get(who)) !== undefined, present);
        assert.equal(await b.list('offline').count(who), present ? 1 : 0);
        assert.equal((await b.pubsub('pep').nodes(who)).length, present ? 1 : 0);
        assert.equal((await range(b.archive('mam'), who)).length, present ? 1 : 0);
      }
    });

    it('a transaction that fails leaves nothing behind where the backend is atomic', async () => {
      const kv = b.keyValue<number>('tx-test');
      await kv.set('k', 1);
      await assert.rejects(
        b.transaction(async (tx) => {
          await tx.keyValue<number>('tx-test').set('k', 2);
          await tx.list('tx-list').append('k', 'x');
          throw new Error('boom');
        }),
        /boom/,
      );
      assert.equal(await kv.get('k'), under.atomic ? 1 : 2);
      assert.equal(await b.list('tx-list').count('k'), under.atomic ? 0 : 1);
      await b.transaction(async (tx) => {
        await tx.keyValue<number>('tx-test').set('k', 3);
        await tx.archive('mam').append('tx@x', { ...newArchiveId(), with: 'y@x', xml: '<message/>' });
      });
      assert.equal(await kv.get('k'), 3);
      assert.equal((await range(b.archive('mam'), 'tx@x')).length, 1);
    });

    it('typed stores: offline messages and roster updates over the backend', async () => {
      const ctx = { config: buildConfig({}) } as never;
      const offline = new OfflineStore(b, ctx);
      const { parse } = await import('../../src/xml/element.ts');
      assert.equal(await offline.add('olga@x', parse('<message to="olga@x"><body>1</body></message>')), true);
      assert.equal(await offline.add('olga@x', parse('<message to="olga@x"><body>2</body></message>')), true);
      let got: string[] = [];
      await offline.drain('olga@x', async (ms) => {
        got = ms.map((m) => m.getChildText('body') ?? '');
        return true;
      });
      assert.deepEqual(got, ['1', '2']);
      assert.equal(await b.list('offline').count('olga@x'), 0);
      const rosters = new RosterStore(b);
      const r = await rosters.setItem('olga@x', { jid: 'pete@x', subscription: 'both', groups: ['Friends'] });
      assert.equal(r.version, 1);
      assert.equal((await rosters.getItem('olga@x', 'pete@x'))?.subscription, 'both');
    });

    it('every operation counts toward the durability barrier of the stanza that caused it', async () => {
      const tracked = trackedBackend(b);
      const out: string[] = [];
      const barrier = new DurabilityBarrier<string>((x) => out.push(x));
      const stream: InboundStream = { pauseReading() {}, resumeReading() {}, closed: false };
      let write!: Promise<void>;
      barrier.run(stream, () => {
        write = tracked.keyValue<string>('durable').set('k', 'v');
      });
      barrier.run(stream, () => barrier.output('pong'));
      assert.deepEqual(out, [], 'the reply waits for the write');
      await write;
      await barrier.whenDurable();
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(out, ['pong']);
      assert.equal(await b.keyValue('durable').get('k'), 'v');
    });

    it('keeps what was written across a restart, and archive ids keep increasing', async () => {
      await b.keyValue('restart').set('k', { kept: true });
      const ahead = newArchiveId(Date.now() + 3_600_000);
      await b.archive('mam').append('late@x', { ...ahead, with: 'x@x', xml: '<message/>' });
      b = await under.reopen(b);
      assert.deepEqual(await b.keyValue('restart').get('k'), { kept: true });
      assert.ok(newArchiveId().id > ahead.id, 'ids made after the restart sort after the highest stored');
    });
  });
}
