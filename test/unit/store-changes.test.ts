// Stores kept in memory, as two cluster nodes see them: two processes'
// stores over one backend, whose change hubs are linked as the cluster
// links them (a notice names the entry; the other side re-reads storage).
// A change made on one is seen by the other once announced; notices missed
// while unlinked are made good by a resync (which also drops entries
// deleted meanwhile); a view built from an entry is ready before it applies.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { StoreChangeHub } from '../../src/host/store-changes.ts';
import { Jid } from '../../src/jid/jid.ts';
import { Logger } from '../../src/log.ts';
import { BlocklistStore } from '../../src/storage/blocklist.ts';
import { LevelBackend } from '../../src/storage/level.ts';
import { type MamPrefs, MamPrefsStore } from '../../src/storage/mam-prefs.ts';

describe('stores kept in memory follow changes made by another process', () => {
  const dir = mkdtempSync(join(tmpdir(), 'jabberfly-changes-'));
  let backend: LevelBackend;
  const hubA = new StoreChangeHub(new Logger('silent'));
  const hubB = new StoreChangeHub(new Logger('silent'));
  // What the cluster does over Redis, in-process: a notice from one is handled by the other.
  const link = (from: StoreChangeHub, to: StoreChangeHub) => from.attach({ publish: (store, key) => to.received(store, key) });

  before(async () => {
    backend = await LevelBackend.open(dir);
  });
  after(async () => {
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('re-reads a changed entry on notice, and everything after notices were missed', async () => {
    const a = new BlocklistStore(backend, { storeChanges: hubA });
    const b = new BlocklistStore(backend, { storeChanges: hubB });
    await Promise.all([a.load(), b.load()]);
    link(hubA, hubB);
    link(hubB, hubA);
    const eve = Jid.parse('eve@x/phone');
    assert.deepEqual(await a.block('bob@x', ['eve@x'], 10), ['eve@x']);
    assert.equal(b.isBlocked('bob@x', eve), true, 'B re-read the list once A announced it');
    // B changes what storage holds, not A's stale idea of it: both JIDs stay.
    assert.deepEqual(await b.block('bob@x', ['mallory@x'], 10), ['mallory@x']);
    assert.deepEqual(a.get('bob@x').sort(), ['eve@x', 'mallory@x']);

    // B loses its link (a dropped events connection): A's changes meanwhile go unnoticed...
    hubA.attach(null);
    await a.unblock('bob@x', null);
    assert.deepEqual(await a.block('carol@x', ['eve@x'], 10), ['eve@x']);
    assert.equal(b.isBlocked('bob@x', eve), true);
    assert.equal(b.isBlocked('carol@x', eve), false);
    // ...until it re-reads everything: a list emptied meanwhile is gone, a new one is there.
    await hubB.resync();
    assert.deepEqual(b.get('bob@x'), []);
    assert.equal(b.isBlocked('carol@x', eve), true);
  });

  it('prepares what depends on an entry before the entry applies', async () => {
    link(hubA, hubB);
    const a = new MamPrefsStore(backend, { storeChanges: hubA });
    const b = new MamPrefsStore(backend, { storeChanges: hubB });
    await Promise.all([a.load(), b.load()]);
    const seen: Array<[string, MamPrefs | undefined, MamPrefs | undefined]> = [];
    b.onChange((user, next) => {
      seen.push([user, next, b.get(user)]);
    });
    await a.set('bob@x', { default: 'never', always: [], never: [] });
    assert.equal(b.get('bob@x')?.default, 'never');
    await a.forget('bob@x');
    assert.equal(b.get('bob@x'), undefined);
    // The hook saw each next value while the previous one still applied.
    assert.deepEqual(
      seen.map(([u, next, current]) => [u, next?.default, current?.default]),
      [
        ['bob@x', 'never', undefined],
        ['bob@x', undefined, 'never'],
      ],
    );
  });
});
