// Memory bounds on input: the parser charges what a stanza costs in memory
// (elements, attributes, text nodes, not only bytes), a process-wide budget
// caps all unfinished stanzas together, streams before authentication get a
// far smaller stanza limit (c2s, WebSocket, s2s), s2s connections are
// limited per address like client ones, and TLS handshakes that never
// finish count against the per-address limit and time out.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { WebSocket } from 'ws';
import { S2SService } from '../../src/s2s/s2s-service.ts';
import { HttpService } from '../../src/websocket/http-service.ts';
import { ParseBudget, type StreamErrorCondition, XmlStreamParser } from '../../src/xml/stream-parser.ts';
import { RawSocket, rawLogin, streamHeader } from '../helpers/raw-socket.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const HEADER = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
const s2sHeader = (to = 'localhost') =>
  `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' to='${to}' from='evil.example' version='1.0'>`;

function parser(limit: number, budget?: ParseBudget) {
  const errors: StreamErrorCondition[] = [];
  const stanzas: string[] = [];
  const p = new XmlStreamParser({ maxStanzaSize: limit, maxDepth: 32, budget }, {
    open: () => {},
    stanza: (e) => stanzas.push(e.name),
    close: () => {},
    error: (c) => errors.push(c),
  });
  p.write(HEADER);
  return { p, errors, stanzas };
}

/** Feeds `unit` until the parser holds about `target` (or fails); returns the bytes written. */
function fill(p: XmlStreamParser, errors: unknown[], unit: string, target: number): number {
  let written = 0;
  while (p.holding < target && errors.length === 0) {
    p.write(unit);
    written += unit.length;
  }
  return written;
}

describe('parser accounting', () => {
  it('stops a stanza of 60,000 tiny elements after a few KB, with policy-violation', () => {
    const { p, errors } = parser(256 * 1024);
    p.write('<message>');
    let written = 0;
    const attack = '<a/>'.repeat(60_000);
    for (let i = 0; i < attack.length && errors.length === 0; i += 16_384) {
      p.write(attack.slice(i, i + 16_384));
      written += 16_384;
    }
    assert.deepEqual(errors, ['policy-violation']);
    assert.ok(written <= 32 * 1024, `refused after ${written} bytes, not after 240 KB`);
  });

  it('charges at least what the parsed tree really occupies, whatever its shape', () => {
    const limit = 256 * 1024;
    const shapes: Record<string, string> = {
      'tiny elements': '<a/>',
      'elements with attributes': "<a b='1' c='2' d='3'/>",
      'short text nodes': '<a>x</a>',
      'nested pairs': '<a><b/></a>',
      'long text': `<a>${'y'.repeat(2000)}</a>`,
    };
    for (const [shape, unit] of Object.entries(shapes)) {
      const held: XmlStreamParser[] = [];
      gc();
      const before = process.memoryUsage().heapUsed;
      let charged = 0;
      let wire = 0;
      for (let i = 0; i < 40; i++) {
        const { p, errors } = parser(limit);
        p.write('<message>');
        wire += fill(p, errors, unit, limit * 0.9);
        assert.deepEqual(errors, [], shape);
        charged += p.holding;
        held.push(p);
      }
      gc();
      const used = process.memoryUsage().heapUsed - before;
      // The charge covers the heap (within 10%), so a limit in charged bytes bounds memory.
      assert.ok(used <= charged * 1.1, `${shape}: heap ${used} vs charged ${charged} (wire ${wire})`);
      held.length = 0;
    }
  });

  it('shares one budget among streams: the stream that would exceed it ends with resource-constraint', () => {
    const budget = new ParseBudget(100 * 1024);
    const a = parser(256 * 1024, budget);
    const b = parser(256 * 1024, budget);
    a.p.write('<message>');
    fill(a.p, a.errors, '<a/>', 60 * 1024);
    assert.ok(budget.used >= 60 * 1024 && budget.used === a.p.holding);
    b.p.write('<message>');
    fill(b.p, b.errors, '<a/>', 60 * 1024);
    assert.deepEqual(b.errors, ['resource-constraint']);
    assert.deepEqual(a.errors, [], 'the stream that was within its share goes on');
    assert.equal(budget.used, a.p.holding, 'the failed stream gave back what it held');
    a.p.write('</message>');
    assert.equal(budget.used, 0, 'a finished stanza leaves the budget');
    const c = parser(256 * 1024, budget);
    c.p.write('<message>');
    fill(c.p, c.errors, '<a/>', 60 * 1024);
    c.p.release();
    assert.equal(budget.used, 0, 'a dropped parser gives back what it held');
    assert.deepEqual(c.errors, []);
  });
});

describe('per-stream limits on a running server', () => {
  let ts: TestServer;
  const sockets: RawSocket[] = [];
  const track = <T extends RawSocket>(s: T) => {
    sockets.push(s);
    return s;
  };

  before(async () => {
    ts = await startServer({
      s2s: { port: 0 },
      http: { port: 0 },
      limits: {
        maxStanzaSizePreAuth: 8 * 1024,
        maxS2SConnectionsPerIp: 4,
        maxConnectionsPerIp: 4,
        tlsHandshakeTimeout: 2,
      },
    });
    await ts.addUser('alice', 'pw');
    await ts.addUser('bob', 'pw');
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await ts?.stop();
  });

  const padding = (n: number) => `<x xmlns='urn:pad'>${'p'.repeat(n)}</x>`;

  it('refuses a 20 KB stanza before authentication on c2s, and carries it after', async () => {
    const pre = track(await RawSocket.connect(ts.port));
    pre.write(streamHeader());
    await pre.waitFor(/<\/stream:features>/);
    pre.write(`<iq type='get' id='big'><query xmlns='jabber:iq:register'/>${padding(20_000)}</iq>`);
    await pre.waitFor(/<policy-violation/);
    await pre.waitClosed(10_000);

    const alice = track(await rawLogin(ts.port, 'alice', 'pw'));
    const bob = track(await rawLogin(ts.port, 'bob', 'pw'));
    bob.write('<presence/>');
    alice.write(`<message to='bob@localhost/raw' id='m1'><body>${'b'.repeat(20_000)}</body></message>`);
    await bob.waitFor(/id="m1"/, 10_000);
    assert.equal(alice.closed, false);
  });

  it('refuses a 20 KB message before authentication on WebSocket', async () => {
    const port = ts.server.service(HttpService)!.ports.http!;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/xmpp-websocket`, 'xmpp');
    const frames: string[] = [];
    ws.on('message', (d) => frames.push(String(d)));
    await new Promise((r, j) => ws.once('open', r).once('error', j));
    ws.send("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>");
    ws.send(`<iq xmlns='jabber:client' type='get' id='big'><query xmlns='jabber:iq:register'/>${padding(20_000)}</iq>`);
    await new Promise((r) => ws.once('close', r));
    assert.ok(frames.some((f) => f.includes('policy-violation')), frames.join('\n'));
  });

  it('refuses a 20 KB stanza on an unauthenticated s2s stream', async () => {
    const s = track(await RawSocket.connect(ts.server.service(S2SService)!.ports.starttls!));
    s.write(s2sHeader());
    await s.waitFor(/<\/stream:features>/);
    s.write(`<message from='x@evil.example' to='alice@localhost'><body>${'b'.repeat(20_000)}</body></message>`);
    await s.waitFor(/<policy-violation/);
    await s.waitClosed(10_000);
  });

  it('limits s2s connections per address like client ones', async () => {
    const port = ts.server.service(S2SService)!.ports.starttls!;
    const open: RawSocket[] = [];
    for (let i = 0; i < 4; i++) {
      const s = track(await RawSocket.connectFrom(port, '127.0.0.44'));
      s.write(s2sHeader());
      await s.waitFor(/<\/stream:features>/);
      open.push(s);
    }
    const fifth = track(await RawSocket.connectFrom(port, '127.0.0.44'));
    fifth.write(s2sHeader());
    await fifth.waitFor(/<policy-violation/);
    await fifth.waitClosed(10_000);
    const other = track(await RawSocket.connectFrom(port, '127.0.0.45'));
    other.write(s2sHeader());
    await other.waitFor(/<\/stream:features>/);
    assert.ok(open.every((s) => !s.closed), 'the first four are still open');
  });

  it('counts TLS handshakes that never start against the address, and drops them after the timeout', async () => {
    const port = ts.directTlsPort;
    const silent: RawSocket[] = [];
    // Four TCP connections to the direct-TLS port that never send a ClientHello.
    for (let i = 0; i < 4; i++) silent.push(track(await RawSocket.connectFrom(port, '127.0.0.46')));
    const fifth = track(await RawSocket.connectFrom(port, '127.0.0.46'));
    await fifth.waitClosed(5_000);
    assert.equal(fifth.input, '', 'refused without a word (no TLS yet)');
    // The silent ones are dropped once the handshake timeout (2 s) passes.
    for (const s of silent) await s.waitClosed(15_000);
    // Then the address may connect again, and a real handshake works.
    const ok = track(await RawSocket.connectFrom(port, '127.0.0.46'));
    await ok.startTls();
    ok.write(streamHeader());
    await ok.waitFor(/<\/stream:features>/);
  });

  it('drops a STARTTLS that never completes its handshake', async () => {
    const s = track(await RawSocket.connectFrom(ts.port, '127.0.0.47'));
    s.write(streamHeader());
    await s.waitFor(/<\/stream:features>/);
    s.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    await s.waitFor(/<proceed/);
    const t0 = Date.now();
    await s.waitClosed(15_000);
    assert.ok(Date.now() - t0 < 12_000, 'closed at the handshake timeout, not the 30 s auth timeout');
  });
});
