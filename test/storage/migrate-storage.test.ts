// `jabberfly migrate-storage` round trip: a LevelDB store filled by a real
// server and real clients (account, roster, vCard, an offline message, the
// message archive, a PEP item, an upload record) is copied to PostgreSQL
// by the real command, a server on PostgreSQL serves all of it, and the
// copy back to a fresh LevelDB folder verifies the same counts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import { LevelBackend } from '../../src/storage/level.ts';
import { runCli } from '../helpers/cli.ts';
import { iq, query } from '../helpers/mam.ts';
import { type TestDatabase, testDatabase } from '../helpers/postgres.ts';
import { startServer } from '../helpers/server.ts';
import { connect } from '../helpers/xmpp-client.ts';

const PUBSUB = 'http://jabber.org/protocol/pubsub';

describe('migrate-storage', () => {
  let db: TestDatabase;
  let root: string;
  let configFile: string;

  before(async () => {
    db = await testDatabase();
    root = mkdtempSync(join(tmpdir(), 'jabberfly-migrate-'));
    configFile = join(root, 'jabberfly.yaml');
    writeFileSync(configFile, `domain: localhost\nstorage:\n  path: ${join(root, 'level')}\n  url: ${db.url}\n`);
  });
  after(async () => {
    await db.release();
    rmSync(root, { recursive: true, force: true });
  });

  it('copies a LevelDB store to PostgreSQL and back, counts verified, and a server on PostgreSQL serves it', async () => {
    // 1. A server on LevelDB, used by real clients.
    const level = await startServer({ storage: { path: join(root, 'level') } }, join(root, 'server-a'));
    await level.addUser('alice', 'secret-a');
    await level.addUser('bob', 'secret-b');
    const alice = await connect({ port: level.port, username: 'alice', password: 'secret-a', resource: 'r' });
    await iq(alice, 'set', xml('query', { xmlns: 'jabber:iq:roster' }, xml('item', { jid: 'bob@localhost', name: 'Bob' })));
    await iq(alice, 'set', xml('vCard', { xmlns: 'vcard-temp' }, xml('FN', {}, 'Alice Liddell')));
    await iq(
      alice,
      'set',
      xml('pubsub', { xmlns: PUBSUB }, xml('publish', { node: 'http://jabber.org/protocol/nick' }, xml('item', { id: 'current' }, xml('nick', { xmlns: 'http://jabber.org/protocol/nick' }, 'ally')))),
    );
    await alice.send(xml('message', { to: 'bob@localhost', type: 'chat', id: 'm1' }, xml('body', {}, 'while you were away')));
    // A ping answered after the message means the message is stored (durability barrier).
    await iq(alice, 'get', xml('ping', { xmlns: 'urn:xmpp:ping' }));
    await alice.stop();
    await level.server.storage.uploadRecords().put({
      id: 'Upl0adUpl0adUpl0adUpl0ad',
      owner: 'alice@localhost',
      filename: 'cat.png',
      size: 12,
      contentType: 'image/png',
      created: Date.now(),
      state: 'stored',
      expires: null,
    });
    await level.stop(false);

    // 2. The real command copies it.
    const there = await runCli(['migrate-storage', '-c', configFile, '--from', 'level', '--to', 'postgres']);
    assert.equal(there.code, 0, there.stderr + there.stdout);
    assert.match(there.stdout, /verified: \d+ stores, the same counts on both sides/);
    assert.match(there.stdout, /keyValue:accounts\s+2 keys/);
    assert.match(there.stdout, /list:offline\s+1 keys, 1 items/);
    assert.match(there.stdout, /pubsub:pep\s+1 nodes, 1 items/);
    assert.match(there.stdout, /archive:mam\s+2 owners, 2 entries/);
    assert.match(there.stdout, /uploads:upload\s+1 records/);

    // Copying again into the now-full database is refused.
    const again = await runCli(['migrate-storage', '-c', configFile, '--from', 'level', '--to', 'postgres']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /target store is not empty/);

    // 3. A server on PostgreSQL serves what LevelDB held.
    const pg = await startServer({ storage: { backend: 'postgres', url: db.url } }, join(root, 'server-b'));
    try {
      const bob = await connect({ port: pg.port, username: 'bob', password: 'secret-b', resource: 'r' });
      await bob.send(xml('presence'));
      const offline = await bob.waitFor((s) => s.is('message') && s.getChildText('body') === 'while you were away', 'offline message', 15000);
      assert.equal(offline.attrs.from, 'alice@localhost/r');
      await bob.stop();
      const alice2 = await connect({ port: pg.port, username: 'alice', password: 'secret-a', resource: 'r2' });
      const roster = await iq(alice2, 'get', xml('query', { xmlns: 'jabber:iq:roster' }));
      assert.equal(roster.getChild('query')?.getChild('item')?.attrs.name, 'Bob');
      const vcard = await iq(alice2, 'get', xml('vCard', { xmlns: 'vcard-temp' }));
      assert.equal(vcard.getChild('vCard')?.getChildText('FN'), 'Alice Liddell');
      const nick = await iq(alice2, 'get', xml('pubsub', { xmlns: PUBSUB }, xml('items', { node: 'http://jabber.org/protocol/nick' })));
      assert.equal(nick.getChild('pubsub')?.getChild('items')?.getChild('item')?.getChildText('nick'), 'ally');
      const mam = await query(alice2);
      assert.deepEqual(
        mam.results.map((r) => r.getChild('result')?.getChild('forwarded')?.getChild('message')?.getChildText('body')),
        ['while you were away'],
      );
      await alice2.stop();
    } finally {
      await pg.stop(false);
    }

    // 4. And back to a fresh LevelDB folder, verified again.
    const back = join(root, 'level-back');
    const home = await runCli(['migrate-storage', '-c', configFile, '--from', 'postgres', '--to', 'level', '--path', back]);
    assert.equal(home.code, 0, home.stderr + home.stdout);
    assert.match(home.stdout, /verified/);
    assert.doesNotMatch(home.stdout, /list:offline/, 'bob took his offline message on the PostgreSQL server');
    const copy = await LevelBackend.open(back);
    try {
      assert.ok(await copy.keyValue('accounts').get('alice'));
      assert.equal((await copy.uploadRecords().get('Upl0adUpl0adUpl0adUpl0ad'))?.filename, 'cat.png');
    } finally {
      await copy.close();
    }
  });

  it('says what is wrong with bad arguments', async () => {
    const r = await runCli(['migrate-storage', '-c', configFile, '--from', 'level', '--to', 'level']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /usage: jabberfly migrate-storage --from level --to postgres/);
  });
});
