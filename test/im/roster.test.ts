// Roster management (RFC 6121 §2, XEP-0237 versioning) with real clients:
// pushes to every interested resource, validation and limits, and rosters
// that survive a restart and a `kill -9` of the jabberfly process.
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { xml } from '@xmpp/client';
import { RawSocket, streamHeader } from '../helpers/raw-socket.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { SlixClient } from '../helpers/slixmpp.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

const ROSTER = 'jabber:iq:roster';
const BIN = new URL('../../bin/jabberfly.js', import.meta.url).pathname;

type Stanza = Awaited<ReturnType<TestClient['waitFor']>>;

function rosterGet(c: TestClient, ver?: string): Promise<Stanza> {
  return c.xmpp.iqCaller.request(xml('iq', { type: 'get' }, xml('query', { xmlns: ROSTER, ver })));
}

function rosterSet(c: TestClient, item: Record<string, string>, ...children: Stanza[]): Promise<Stanza> {
  return c.xmpp.iqCaller.request(
    xml('iq', { type: 'set' }, xml('query', { xmlns: ROSTER }, xml('item', item, ...children))),
  );
}

function items(result: Stanza): Array<Record<string, unknown>> {
  return (result.getChild('query', ROSTER)?.getChildren('item') ?? []).map((i: Stanza) => ({
    ...i.attrs,
    groups: i.getChildren('group').map((g: Stanza) => g.text()),
  }));
}

function isPush(jid: string, subscription?: string) {
  return (s: Stanza) => {
    const item =
      s.is('iq') && s.attrs.type === 'set' ? s.getChild('query', ROSTER)?.getChild('item') : undefined;
    return (
      item?.attrs.jid === jid && (subscription === undefined || item.attrs.subscription === subscription)
    );
  };
}

async function rejectsWith(p: Promise<unknown>, condition: string): Promise<void> {
  await assert.rejects(p, (err: { condition?: string }) => {
    assert.equal(err.condition, condition);
    return true;
  });
}

describe('roster', () => {
  let ts: TestServer;
  before(async () => {
    ts = await startServer({ limits: { rosterMaxItems: 3, rosterFieldMaxLength: 16 } });
    for (const u of ['alice', 'bob', 'limits', 'persist']) await ts.addUser(u, 'pw');
  });
  after(() => ts.stop());

  it('advertises roster versioning and pre-approval after authentication', async () => {
    const s = await RawSocket.connect(ts.port);
    try {
      s.write(streamHeader());
      await s.waitFor(/<\/stream:features>/);
      assert.doesNotMatch(s.input, /rosterver/);
      s.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
      await s.waitFor(/<proceed/);
      await s.startTls();
      s.write(streamHeader());
      await s.waitFor(/<\/stream:features>/);
      s.write(
        `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from('\0alice\0pw').toString('base64')}</auth>`,
      );
      await s.waitFor(/<success/);
      s.input = '';
      s.write(streamHeader());
      const [features] = await s.waitFor(/<stream:features>.*<\/stream:features>/s);
      assert.match(features, /<ver xmlns="urn:xmpp:features:rosterver"\/>/);
      assert.match(features, /<sub xmlns="urn:xmpp:features:pre-approval"\/>/);
    } finally {
      s.destroy();
    }
  });

  it('adds, updates and removes items with pushes to every interested resource and versions', async () => {
    const a1 = await connect({ port: ts.port, username: 'alice', password: 'pw', resource: 'one' });
    const a2 = await connect({ port: ts.port, username: 'alice', password: 'pw', resource: 'two' });
    const a3 = await connect({ port: ts.port, username: 'alice', password: 'pw', resource: 'uninterested' });
    try {
      const empty = await rosterGet(a1, '');
      assert.deepEqual(items(empty), []);
      const v0 = empty.getChild('query', ROSTER).attrs.ver;
      assert.ok(v0 !== undefined, 'roster result carries a version');
      await rosterGet(a2);

      await rosterSet(
        a1,
        { jid: 'Bob@LocalHost', name: 'Bobby' },
        xml('group', {}, 'Friends'),
        xml('group', {}, 'Work'),
      );
      for (const c of [a1, a2]) {
        const push = await c.waitFor(isPush('bob@localhost', 'none'), 'roster push');
        const item = push.getChild('query').getChild('item');
        assert.equal(item.attrs.name, 'Bobby');
        assert.deepEqual(
          item.getChildren('group').map((g: Stanza) => g.text()),
          ['Friends', 'Work'],
        );
        assert.notEqual(push.getChild('query').attrs.ver, v0);
      }

      const full = await rosterGet(a1, v0);
      const v1 = full.getChild('query', ROSTER).attrs.ver;
      assert.deepEqual(items(full), [
        { jid: 'bob@localhost', name: 'Bobby', subscription: 'none', groups: ['Friends', 'Work'] },
      ]);
      // Unchanged since v1: an empty result, no query at all (RFC 6121 §2.6.3).
      const unchanged = await rosterGet(a1, v1);
      assert.equal(unchanged.attrs.type, 'result');
      assert.equal(unchanged.getChild('query'), undefined);

      // A subscription value other than "remove" in a set is ignored (RFC 6121 §2.1.2.5).
      await rosterSet(a2, { jid: 'bob@localhost', subscription: 'both', ask: 'subscribe' });
      const update = await a1.waitFor(isPush('bob@localhost'), 'update push');
      assert.equal(update.getChild('query').getChild('item').attrs.subscription, 'none');
      assert.equal(update.getChild('query').getChild('item').attrs.ask, undefined);
      assert.equal(update.getChild('query').getChild('item').attrs.name, undefined);

      await rosterSet(a1, { jid: 'bob@localhost', subscription: 'remove' });
      for (const c of [a1, a2]) await c.waitFor(isPush('bob@localhost', 'remove'), 'removal push');
      assert.deepEqual(items(await rosterGet(a1)), []);

      // The resource that never asked for the roster got no push: its marker comes first.
      await a1.send(xml('message', { to: a3.jid, type: 'chat' }, xml('body', {}, 'marker')));
      await a3.waitFor((s) => s.is('message'), 'marker');
      assert.equal(a3.received.filter(isPush('bob@localhost')).length, 0);
    } finally {
      await Promise.all([a1.stop(), a2.stop(), a3.stop()]);
    }
  });

  it('refuses bad roster sets with the RFC 6121 conditions and enforces the limits', async () => {
    const c = await connect({ port: ts.port, username: 'limits', password: 'pw' });
    try {
      await rosterGet(c);
      const two = xml(
        'iq',
        { type: 'set' },
        xml('query', { xmlns: ROSTER }, xml('item', { jid: 'a@x' }), xml('item', { jid: 'b@x' })),
      );
      await rejectsWith(c.xmpp.iqCaller.request(two), 'bad-request');
      await rejectsWith(
        rosterSet(c, { jid: 'a@x' }, xml('group', {}, 'G'), xml('group', {}, 'G')),
        'bad-request',
      );
      await rejectsWith(rosterSet(c, { jid: 'a@b@x' }), 'jid-malformed');
      await rejectsWith(rosterSet(c, { jid: 'a@x/res' }), 'jid-malformed');
      await rejectsWith(rosterSet(c, { jid: 'limits@localhost' }), 'not-allowed');
      await rejectsWith(rosterSet(c, { jid: 'a@x', name: 'n'.repeat(17) }), 'not-acceptable');
      await rejectsWith(rosterSet(c, { jid: 'a@x' }, xml('group', {}, 'g'.repeat(17))), 'not-acceptable');
      await rejectsWith(rosterSet(c, { jid: 'a@x' }, xml('group', {})), 'not-acceptable');
      await rejectsWith(rosterSet(c, { jid: 'nobody@x', subscription: 'remove' }), 'item-not-found');
      assert.deepEqual(items(await rosterGet(c)), [], 'nothing refused was stored');

      for (const j of ['a@x', 'b@x', 'c@x']) await rosterSet(c, { jid: j, name: 'n'.repeat(16) });
      await rejectsWith(rosterSet(c, { jid: 'd@x' }), 'policy-violation');
      // Updating an existing item is still fine on a full roster.
      await rosterSet(c, { jid: 'a@x', name: 'renamed' });
      // Subscribing to a new contact would add an item too.
      await c.send(xml('presence', { to: 'e@x', type: 'subscribe', id: 'sub1' }));
      const err = await c.waitFor((s) => s.is('presence') && s.attrs.type === 'error', 'presence error');
      assert.equal(err.getChild('error').getChildElements()[0].name, 'policy-violation');
      assert.equal(items(await rosterGet(c)).length, 3);
    } finally {
      await c.stop();
    }
  });

  it('keeps rosters across a server restart', async () => {
    let c = await connect({ port: ts.port, username: 'persist', password: 'pw' });
    await rosterSet(c, { jid: 'kept@example.org', name: 'Kept' }, xml('group', {}, 'G'));
    const ver = (await rosterGet(c)).getChild('query', ROSTER).attrs.ver;
    await c.stop();
    ts = await ts.restart();
    c = await connect({ port: ts.port, username: 'persist', password: 'pw' });
    try {
      const r = await rosterGet(c, ver);
      assert.equal(r.getChild('query'), undefined, 'same version after restart');
      assert.deepEqual(items(await rosterGet(c)), [
        { jid: 'kept@example.org', name: 'Kept', subscription: 'none', groups: ['G'] },
      ]);
    } finally {
      await c.stop();
    }
  });
});

describe('roster durability', () => {
  const dir = mkdtempSync(join(tmpdir(), 'jabberfly-kill-'));
  const configFile = join(dir, 'jabberfly.yaml');
  let child: ChildProcess | null = null;

  before(() => {
    writeFileSync(
      configFile,
      [
        'domain: localhost',
        'listen: [127.0.0.1]',
        `storage: { path: ${JSON.stringify(join(dir, 'storage'))} }`,
        `tls: { dir: ${JSON.stringify(join(dir, 'certs'))} }`,
        'c2s: { port: 0, directTlsPort: false }',
        's2s: { port: false }',
        'http: { port: false }',
        'https: { port: false }',
        'msn: { enabled: false }',
      ].join('\n'),
    );
  });
  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  /** Starts `jabberfly start` and resolves with its c2s port once it listens. */
  function startProcess(): Promise<number> {
    const proc = spawn(process.execPath, [BIN, 'start', '--config', configFile], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child = proc;
    return new Promise((resolve, reject) => {
      let err = '';
      const timer = setTimeout(() => reject(new Error(`server did not start: ${err}`)), 15000);
      proc.stderr!.on('data', (d) => {
        err += d;
        const m = err.match(/ started .*c2s=(\d+)/);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`server exited (${code}): ${err}`));
      });
    });
  }

  it('a roster change acknowledged by a push survives kill -9 (slixmpp client)', async () => {
    await promisify(execFile)(process.execPath, [
      BIN,
      'adduser',
      'alice@localhost',
      '--password',
      'pw',
      '--config',
      configFile,
    ]);
    const login = async () => {
      const c = new SlixClient({
        jid: 'alice@localhost/durable',
        password: 'pw',
        port: await startProcess(),
      });
      await c.started();
      return c;
    };
    const c = await login();
    try {
      c.send(`<iq type='get' id='g1'><query xmlns='${ROSTER}'/></iq>`);
      await c.waitStanza((s) => s.attrs.id === 'g1' && s.attrs.type === 'result', 'roster result');
      c.send(
        `<iq type='set' id='s1'><query xmlns='${ROSTER}'><item jid='durable@example.org' name='Durable'/></query></iq>`,
      );
      await c.waitStanza(isPush('durable@example.org', 'none'), 'roster push');
      await c.waitStanza((s) => s.attrs.id === 's1' && s.attrs.type === 'result', 'roster set result');
    } finally {
      await c.stop();
    }

    const killed = child!;
    const exited = new Promise((r) => killed.once('exit', (_code, signal) => r(signal)));
    killed.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');

    const again = await login();
    try {
      again.send(`<iq type='get' id='g2'><query xmlns='${ROSTER}'/></iq>`);
      const result = await again.waitStanza((s) => s.attrs.id === 'g2', 'roster after kill -9');
      assert.deepEqual(items(result), [
        { jid: 'durable@example.org', name: 'Durable', subscription: 'none', groups: [] },
      ]);
    } finally {
      await again.stop();
    }
  });
});
