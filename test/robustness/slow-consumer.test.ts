// A client that does not read what it is sent (c2s/slow-consumer.ts): the
// server stops reading from the sender that floods it, closes it after
// limits.slowConsumerTimeout (or beyond outboundQueueMaxSize), then reads
// the sender again; other users notice nothing. Offline messages go to a
// slow reader in batches at its pace, and none is lost when it stalls.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type RawSocket, rawLogin } from '../helpers/raw-socket.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { WebSocket } from 'ws';
import { OfflineStore } from '../../src/storage/offline.ts';
import { HttpService } from '../../src/websocket/http-service.ts';

/** Resolves when a log line matches (the server says what it did). */
function logged(ts: TestServer, pattern: RegExp, ms = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + ms;
    const check = () => {
      const line = ts.logs.find((l) => pattern.test(l));
      if (line) return resolve(line);
      if (Date.now() > deadline) return reject(new Error(`no log line ${pattern}`));
      setTimeout(check, 50);
    };
    check();
  });
}

async function ping(s: RawSocket, id: string, ms = 30_000): Promise<number> {
  const t0 = performance.now();
  s.write(`<iq type='get' id='${id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await s.waitFor(new RegExp(`id="${id}"`), ms);
  return performance.now() - t0;
}

describe('slow consumers', () => {
  let ts: TestServer;
  const sockets: RawSocket[] = [];
  const login = async (user: string, resource: string) => {
    const s = await rawLogin(ts.port, user, 'pw', resource);
    sockets.push(s);
    return s;
  };

  before(async () => {
    ts = await startServer({
      https: { port: 0 },
      limits: { outboundQueueSize: 256 * 1024, outboundQueueMaxSize: 64 * 1024 * 1024, slowConsumerTimeout: 3 },
      log: { level: 'info' },
    });
    for (const u of ['reader', 'flooder', 'witness', 'backlog', 'sender', 'webreader']) await ts.addUser(u, 'pw');
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await ts?.stop();
  });

  it('stops reading the flooder while the reader does not read, closes the reader, then serves the flooder again', async () => {
    const reader = await login('reader', 'r');
    const flooder = await login('flooder', 'f');
    const witness = await login('witness', 'w');
    reader.pause();
    const body = 'x'.repeat(4000);
    const chunk = Array.from({ length: 100 }, (_, i) => `<message to='reader@localhost/r' id='f${i}'><body>${body}</body></message>`).join('');
    const closedLine = /closing a client that does not read .*jid=reader@localhost\/r/;
    // Up to ~40 MB for the reader, far more than the kernel's buffers and the
    // server's queue; written as fast as the kernel takes it.
    let sent = 0;
    let flooderPing: Promise<number> | null = null; // when the ping behind the flood was answered
    while (sent < 100 && !ts.logs.some((l) => closedLine.test(l))) {
      flooder.write(chunk);
      sent++;
      if (sent === 20) {
        // Behind 8 MB of flood: answered only when the server reads the flooder again.
        flooderPing = ping(flooder, 'behind-flood', 90_000).then(() => Date.now());
        // Meanwhile other users are served at once.
        assert.ok((await ping(witness, 'w1')) < 5000);
      }
      if (flooder.unsent > 1024 * 1024) await new Promise((r) => setTimeout(r, 20));
    }
    const line = await logged(ts, closedLine);
    const closedAt = Date.parse(line.split(' ')[0]!);
    // A reader that reads again within the close grace finds what was queued
    // for it, then the policy-violation stream error, then the end of the stream.
    reader.resume();
    await reader.waitFor(/<stream:error><policy-violation xmlns="urn:ietf:params:xml:ns:xmpp-streams"\/>.*<\/stream:error><\/stream:stream>$/s, 30_000);
    await reader.waitClosed(30_000);
    assert.match(line, /WARN .*why="over 262144 bytes waiting for 3 s"/);
    assert.equal(ts.server.sessions.resources('reader@localhost').length, 0, 'the reader is gone');
    // The flooder was slowed down, not cut off: its ping, sent behind the
    // flood, is answered only once the reader is gone and it is read again.
    assert.ok(flooderPing, 'the flood went on long enough to ping behind it');
    const answeredAt = await flooderPing;
    assert.ok(answeredAt >= closedAt, `the ping behind the flood was answered ${closedAt - answeredAt} ms before the reader was closed`);
    assert.ok(
      !ts.logs.some((l) => /authentication failed|closing a client that does not read .*flooder/.test(l)),
      'the flooder itself was never closed',
    );
    assert.equal(flooder.closed, false);
    assert.ok((await ping(witness, 'w2')) < 5000);
  });

  it('closes a WebSocket client that does not read the same way (policy-violation, then <close/>)', async () => {
    const url = `wss://127.0.0.1:${ts.server.service(HttpService)!.ports.https}/xmpp-websocket`;
    const ws = new WebSocket(url, 'xmpp');
    const messages: string[] = [];
    ws.on('message', (d) => messages.push(d.toString()));
    ws.on('error', () => {});
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const next = async (re: RegExp) => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const m = messages.find((x) => re.test(x));
        if (m) return m;
        assert.ok(Date.now() < deadline, `no ${re}: ${messages.slice(-3).join(' | ')}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const open = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";
    ws.send(open);
    await next(/<mechanism>PLAIN<\/mechanism>/);
    ws.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from('\0webreader\0pw').toString('base64')}</auth>`);
    await next(/<success/);
    ws.send(open);
    await next(/<bind/);
    ws.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>web</resource></bind></iq>");
    await next(/id="b"/);
    // Stops reading: what the server sends piles up in the kernel, then in the server.
    const socket = (ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    socket.pause();
    const flooder = await login('flooder', 'f2');
    const chunk = Array.from({ length: 100 }, (_, i) => `<message to='webreader@localhost/web' id='w${i}'><body>${'w'.repeat(4000)}</body></message>`).join('');
    const closedLine = /closing a client that does not read .*jid=webreader@localhost\/web/;
    let written = 0;
    const deadline = Date.now() + 90_000;
    while (!ts.logs.some((l) => closedLine.test(l))) {
      assert.ok(Date.now() < deadline, 'the WebSocket reader was never closed');
      if (written < 100 && flooder.unsent < 512 * 1024) {
        flooder.write(chunk);
        written++;
      } else await new Promise((r) => setTimeout(r, 20));
    }
    assert.match(ts.logs.find((l) => closedLine.test(l))!, /why="over 262144 bytes waiting for 3 s"/);
    socket.resume();
    const error = await next(/<stream:error/);
    assert.match(error, /<policy-violation xmlns="urn:ietf:params:xml:ns:xmpp-streams"\/>/);
    await next(/<close xmlns="urn:ietf:params:xml:ns:xmpp-framing"/);
    assert.equal(ts.server.sessions.resources('webreader@localhost').length, 0);
    assert.ok((await ping(flooder, 'after-ws', 60_000)) >= 0, 'the flooder is served again');
    ws.terminate();
  });

  it('delivers a large offline backlog to a slow reader in batches, and keeps what a stalled reader did not get', async () => {
    const sender = await login('sender', 's');
    const body = 'y'.repeat(24_000);
    const total = 480; // ~11.5 MB: more than the kernel's socket buffers take, 45 times the queue limit
    for (let i = 0; i < total; i++) sender.write(`<message to='backlog@localhost' id='o${i}'><body>${body}</body></message>`);
    await ping(sender, 'stored');
    const store = ts.server.store(OfflineStore);
    const count = async () => {
      let n = 0;
      await store.drain('backlog@localhost', async (m) => {
        n += m.length;
        return false;
      });
      return n;
    };
    assert.equal(await count(), total);

    // A reader that stalls after login: it gets a first batch, is closed after the
    // timeout, and the messages it did not get are still stored.
    const stalled = await login('backlog', 'stall');
    stalled.pause();
    stalled.write('<presence/>');
    await logged(ts, /closing a client that does not read .*jid=backlog@localhost\/stall/);
    const left = await count();
    assert.ok(left > 0 && left < total, `some batches went out, the rest stayed stored (${left} of ${total})`);

    // A reader that reads gets every remaining one, in order.
    const reading = await login('backlog', 'read');
    reading.write('<presence/>');
    await reading.waitFor(new RegExp(`id="o${total - 1}"`), 60_000);
    const ids = [...reading.input.matchAll(/<message [^>]*id="(o\d+)"/g)].map((m) => m[1]);
    assert.equal(ids.length, left, 'the rest, each once');
    assert.deepEqual(ids, [...ids].sort((a, b) => Number(a!.slice(1)) - Number(b!.slice(1))), 'in order');
    assert.equal(await count(), 0);
  });
});
