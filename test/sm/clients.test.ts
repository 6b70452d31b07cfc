// Stream management with a real client: @xmpp/client enables XEP-0198
// with resumption by itself and, with reconnection on, resumes after its
// connection drops — over TCP and over WebSocket. Contacts see no
// unavailable/available pair, whether the session is resumed or replaced.
// And acknowledgements mean stored: after `kill -9`, nothing acknowledged
// is missing.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { client, type Client, xml } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import { AccountStore } from '../../src/storage/accounts.ts';
import { LevelBackend } from '../../src/storage/level.ts';
import { RosterStore } from '../../src/storage/roster.ts';
import { HttpService } from '../../src/websocket/http-service.ts';
import { bodyOf, query } from '../helpers/mam.ts';
import { rawLogin } from '../helpers/raw-socket.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { connect, type TestClient, waitInList } from '../helpers/xmpp-client.ts';

const BIN = new URL('../../bin/jabberfly.js', import.meta.url).pathname;
const SM = 'urn:xmpp:sm:3';

interface Resuming {
  xmpp: Client;
  received: Element[];
  waitFor(pred: (s: Element) => boolean, what: string, ms?: number): Promise<Element>;
  /** Resolves on the next successful resumption. */
  resumed(ms?: number): Promise<void>;
}

/** An @xmpp/client that reconnects (and so resumes) by itself when its connection drops. */
async function resumingClient(service: string, username: string, resource: string): Promise<Resuming> {
  const xmpp = client({ service, domain: 'localhost', username, password: 'pw', resource, timeout: 10000 });
  xmpp.on('error', () => {});
  (xmpp.reconnect as unknown as { delay: number }).delay = 100;
  const received: Element[] = [];
  const waiters: Array<() => void> = [];
  xmpp.on('stanza', (s: Element) => {
    received.push(s);
    for (const w of [...waiters]) w();
  });
  // <enabled/> is a nonza that comes after 'online'; the library takes it in a later microtask.
  xmpp.on('nonza', () =>
    setImmediate(() => {
      for (const w of [...waiters]) w();
    }),
  );
  await xmpp.start();
  const sm = (xmpp as unknown as { streamManagement: NodeJS.EventEmitter & { enabled: boolean; id: string } }).streamManagement;
  // Enabling happens after binding: wait for it, so the test starts from an enabled session.
  if (!sm.enabled) await new Promise<void>((r) => waiters.push(() => sm.enabled && r()));
  return {
    xmpp,
    received,
    waitFor: (pred, what, ms = 15000) => waitInList(received, waiters, pred, what, ms),
    resumed(ms = 15000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no resumption')), ms);
        sm.once('resumed', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}

/** Makes two users contacts with subscription both (set-up straight in the store). */
async function contacts(ts: TestServer, a: string, b: string): Promise<void> {
  const store = ts.server.store(RosterStore);
  for (const [user, other] of [
    [a, b],
    [b, a],
  ]) {
    await store.setItem(`${user}@localhost`, { jid: `${other}@localhost`, subscription: 'both', groups: [] });
  }
}

const unavailableFrom = (jid: string) => (s: Element) => s.is('presence') && s.attrs.from === jid && s.attrs.type === 'unavailable';

describe('stream management with @xmpp/client', () => {
  let ts: TestServer;
  let wsUrl: string;

  before(async () => {
    ts = await startServer({ c2s: { requireTls: false }, http: { port: 0 } });
    wsUrl = `ws://127.0.0.1:${ts.server.service(HttpService)!.ports.http}/xmpp-websocket`;
    for (const u of ['alice', 'bob', 'carol', 'dave']) await ts.addUser(u, 'pw');
    await contacts(ts, 'alice', 'bob');
    await contacts(ts, 'carol', 'dave');
  });
  after(async () => {
    await ts?.stop();
  });

  for (const transport of ['tcp', 'websocket'] as const) {
    it(`resumes over ${transport} after the connection drops: queued messages arrive, the contact sees no flap`, async () => {
      const bob = await connect({ port: ts.port, username: 'bob', password: 'pw', resource: `watch-${transport}` });
      await bob.send(xml('presence'));
      const service = transport === 'tcp' ? `xmpp://127.0.0.1:${ts.port}` : wsUrl;
      const alice = await resumingClient(service, 'alice', transport);
      try {
        // Over TLS the client logs in with SASL2 + Bind2, which adds an id to its resource.
        const full = alice.xmpp.jid!.toString();
        assert.ok(full.startsWith(`alice@localhost/${transport}`), full);
        await alice.xmpp.send(xml('presence'));
        await bob.waitFor((s) => s.is('presence') && s.attrs.from === full && !s.attrs.type, 'alice available');
        const resumed = alice.resumed();
        // Gone without a closing stream: a dropped TCP connection, a WebSocket closed without <close/>.
        const socket = (alice.xmpp as unknown as { socket: { socket: { destroy?: () => void; close?: () => void } } }).socket.socket;
        if (transport === 'tcp') socket.destroy!();
        else socket.close!();
        for (let i = 1; i <= 3; i++) {
          await bob.send(xml('message', { to: full, type: 'chat', id: `${transport}${i}` }, xml('body', {}, `meanwhile ${i}`)));
        }
        await resumed;
        for (let i = 1; i <= 3; i++) await alice.waitFor((s) => s.attrs.id === `${transport}${i}`, `message ${i}`);
        // A round trip after resumption, then: bob never saw alice go.
        await alice.xmpp.send(xml('message', { to: 'bob@localhost', type: 'chat', id: `back-${transport}` }, xml('body', {}, 'back')));
        await bob.waitFor((s) => s.attrs.id === `back-${transport}`, 'message after resumption');
        assert.equal(bob.received.filter(unavailableFrom(full)).length, 0, 'no unavailable presence');
        assert.ok(!bob.received.some((s) => s.is('presence') && s.attrs.from === full), 'no second available either');
      } finally {
        alice.xmpp.reconnect.stop();
        await alice.xmpp.stop().catch(() => {});
        await bob.stop();
      }
    });
  }

  it('a session replaced by a new login of the same resource keeps its presence and hands over what it held', async () => {
    const dave = await connect({ port: ts.port, username: 'dave', password: 'pw', resource: 'watch' });
    await dave.send(xml('presence'));
    const old = await rawLogin(ts.port, 'carol', 'pw', 'phone');
    old.write(`<presence><status>old</status></presence><enable xmlns='${SM}' resume='true'/>`);
    await old.waitFor(/<enabled/);
    await dave.waitFor((s) => s.is('presence') && s.attrs.from === 'carol@localhost/phone', 'carol available');
    old.destroy();
    // While the old session waits to be resumed, dave writes to it.
    await dave.send(xml('message', { to: 'carol@localhost/phone', type: 'chat', id: 'held' }, xml('body', {}, 'for the phone')));
    // The client lost its SM-ID: it logs in again with the same resource.
    const fresh = await rawLogin(ts.port, 'carol', 'pw', 'phone');
    const [m] = await fresh.waitFor(/<message[^>]*id=["']held["'][\s\S]*?<\/message>/);
    assert.match(m!, /for the phone/);
    fresh.write('<presence><status>new</status></presence>');
    const update = await dave.waitFor(
      (s) => s.is('presence') && s.attrs.from === 'carol@localhost/phone' && s.getChildText('status') === 'new',
      'the new presence',
    );
    assert.equal(update.attrs.type, undefined);
    assert.equal(dave.received.filter(unavailableFrom('carol@localhost/phone')).length, 0, 'no unavailable in between');
    // The new client gets what an initial presence brings: its contact's presence.
    await fresh.waitFor(/<presence[^>]*from=["']dave@localhost\/watch["']/);
    fresh.destroy();
    await dave.stop();
  });
});

describe('stream management acknowledgements survive kill -9', () => {
  const dir = mkdtempSync(join(tmpdir(), 'jabberfly-sm-kill-'));
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
        'muc: { enabled: false }',
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
    const proc = spawn(process.execPath, [BIN, 'start', '--config', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    return new Promise((resolve, reject) => {
      let err = '';
      const timer = setTimeout(() => reject(new Error(`server did not start: ${err}`)), 30000);
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

  it('every message acknowledged with <a h/> is stored after the server is killed', async () => {
    // Accounts straight into the storage (the server is not running yet).
    const backend = await LevelBackend.open(join(dir, 'storage'));
    for (const u of ['sender', 'receiver']) await new AccountStore(backend).setPassword(u, 'pw');
    await backend.close();
    let port = await startProcess();
    const sender = await resumingClient(`xmpp://127.0.0.1:${port}`, 'sender', 'r');
    sender.xmpp.reconnect.stop();
    const sm = (sender.xmpp as unknown as { streamManagement: NodeJS.EventEmitter }).streamManagement;
    const acked = new Set<string>();
    sm.on('ack', (s: Element) => {
      if (s.is('message')) acked.add(s.attrs.id);
    });
    const all = new Promise<void>((resolve) =>
      sm.on('ack', () => {
        if (acked.size === 30) resolve();
      }),
    );
    // 30 messages to a user who is offline: each one is an offline write and two archive writes.
    for (let i = 0; i < 30; i++) {
      await sender.xmpp.send(xml('message', { to: 'receiver@localhost', type: 'chat', id: `k${i}` }, xml('body', {}, `durable ${i}`)));
    }
    await all;
    // The moment the last acknowledgement arrived: no clean shutdown, no flush.
    child!.kill('SIGKILL');
    await new Promise((r) => child!.once('exit', r));
    await sender.xmpp.stop().catch(() => {});

    port = await startProcess();
    const receiver: TestClient = await connect({ port, username: 'receiver', password: 'pw', resource: 'back' });
    try {
      await receiver.send(xml('presence'));
      for (let i = 0; i < 30; i++) await receiver.waitFor((s) => s.attrs.id === `k${i}`, `offline message ${i}`, 15000);
      const archived = await query(receiver, { with: 'sender@localhost' }, { max: 50 });
      assert.deepEqual(
        archived.results.map(bodyOf),
        Array.from({ length: 30 }, (_, i) => `durable ${i}`),
        'and each one is in the archive',
      );
    } finally {
      await receiver.stop();
    }
  });
});
