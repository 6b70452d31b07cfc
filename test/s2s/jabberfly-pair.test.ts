// Federation between two jabberfly instances in one process (a.test and
// b.test, each with its own storage and generated certificate, routed to
// each other's 127.0.0.1 s2s port by s2s.routes). The self-signed
// certificates do not verify, so links authenticate with Server Dialback,
// including the verify round trip to the authoritative server.
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import { S2SService } from '../../src/s2s/s2s-service.ts';
import { el } from '../../src/xml/element.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';
import { FakeDns } from './fake-dns.ts';
import { RawS2SPeer } from './raw-peer.ts';

type Stanza = Awaited<ReturnType<TestClient['waitFor']>>;
const ROSTER = 'jabber:iq:roster';

function s2s(ts: TestServer): S2SService {
  const s = ts.server.service(S2SService);
  assert.ok(s, 's2s service running');
  return s;
}

function errorCondition(s: Stanza): string | undefined {
  const e = s.getChild('error');
  return e?.children.find(
    (c: Stanza | string) => typeof c !== 'string' && c.attrs.xmlns === 'urn:ietf:params:xml:ns:xmpp-stanzas',
  )?.name;
}

function isRosterPush(jid: string, subscription: string) {
  return (s: Stanza) =>
    s.is('iq') &&
    s.attrs.type === 'set' &&
    s.getChild('query', ROSTER)?.getChild('item')?.attrs.jid === jid &&
    s.getChild('query', ROSTER)?.getChild('item')?.attrs.subscription === subscription;
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** Resolves once `cond()` holds, polling it every 20 ms (for state with no event to wait on). */
async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('federation between two jabberfly servers', () => {
  let a: TestServer;
  let b: TestServer;
  let alice: TestClient;
  let bob: TestClient;

  before(async () => {
    // a.test also hosts the transport domain msn.a.test (nothing leaves
    // loopback: its MSN server setting points at a closed local port).
    a = await startServer({
      domain: 'a.test',
      s2s: { port: 0, directTlsPort: 0, connectTimeout: 3 },
      msn: { enabled: true, server: '127.0.0.1:9' },
    });
    b = await startServer({ domain: 'b.test', s2s: { port: 0, directTlsPort: 0, connectTimeout: 3 } });
    // Each knows the other only through its static route table.
    a.config.s2s.routes['b.test'] = `127.0.0.1:${s2s(b).ports.starttls}`;
    b.config.s2s.routes['a.test'] = `127.0.0.1:${s2s(a).ports.starttls}`;
    b.config.s2s.routes['msn.a.test'] = `127.0.0.1:${s2s(a).ports.starttls}`;
    await a.addUser('alice', 'pw');
    await b.addUser('bob', 'pw');
    alice = await connect({
      port: a.port,
      domain: 'a.test',
      username: 'alice',
      password: 'pw',
      resource: 'home',
    });
    bob = await connect({
      port: b.port,
      domain: 'b.test',
      username: 'bob',
      password: 'pw',
      resource: 'work',
    });
    // Available resources that asked for their roster (RFC 6121 "interested").
    for (const c of [alice, bob]) {
      await c.xmpp.iqCaller.request(xml('iq', { type: 'get' }, xml('query', { xmlns: ROSTER })));
      await c.send(xml('presence'));
    }
  });

  after(async () => {
    await alice?.stop();
    await bob?.stop();
    await a?.stop();
    await b?.stop();
  });

  it('delivers an iq to a full JID on the other server over dialback-authenticated links', async () => {
    const reply = bob.waitFor((s) => s.is('iq') && s.attrs.id === 'ping1', 'iq at bob');
    await alice.send(
      xml('iq', { type: 'get', to: 'bob@b.test/work', id: 'ping1' }, xml('ping', { xmlns: 'urn:xmpp:ping' })),
    );
    const iq = await reply;
    assert.equal(iq.attrs.from, 'alice@a.test/home');
    await bob.send(xml('iq', { type: 'result', to: iq.attrs.from, id: 'ping1' }));
    const back = await alice.waitFor((s) => s.is('iq') && s.attrs.id === 'ping1', 'result at alice');
    assert.equal(back.attrs.type, 'result');
    assert.equal(back.attrs.from, 'bob@b.test/work');
    // Both directions were authenticated with dialback (no verified certificates).
    assert.ok(
      a.logs.some((l) => /outgoing s2s authenticated.*to=b\.test.*method=dialback/.test(l)),
      'a→b dialback',
    );
    assert.ok(
      b.logs.some((l) => /incoming s2s authenticated.*from=a\.test.*method=dialback/.test(l)),
      'b accepted a',
    );
    assert.ok(
      b.logs.some((l) => /outgoing s2s authenticated.*to=a\.test.*method=dialback/.test(l)),
      'b→a dialback',
    );
  });

  it('subscribes both ways across servers and ends with subscription both', async () => {
    await alice.send(xml('presence', { to: 'bob@b.test', type: 'subscribe' }));
    const sub1 = await bob.waitFor(
      (s) => s.is('presence') && s.attrs.type === 'subscribe',
      'subscribe at bob',
    );
    assert.equal(sub1.attrs.from, 'alice@a.test');
    await bob.send(xml('presence', { to: 'alice@a.test', type: 'subscribed' }));
    await alice.waitFor(isRosterPush('bob@b.test', 'to'), 'alice roster push to');

    await bob.send(xml('presence', { to: 'alice@a.test', type: 'subscribe' }));
    const sub2 = await alice.waitFor(
      (s) => s.is('presence') && s.attrs.type === 'subscribe',
      'subscribe at alice',
    );
    assert.equal(sub2.attrs.from, 'bob@b.test');
    await alice.send(xml('presence', { to: 'bob@b.test', type: 'subscribed' }));
    await alice.waitFor(isRosterPush('bob@b.test', 'both'), 'alice roster push both');
    await bob.waitFor(isRosterPush('alice@a.test', 'both'), 'bob roster push both');

    for (const [c, peer] of [
      [alice, 'bob@b.test'],
      [bob, 'alice@a.test'],
    ] as const) {
      const roster = await c.xmpp.iqCaller.request(
        xml('iq', { type: 'get' }, xml('query', { xmlns: ROSTER })),
      );
      const item = roster
        .getChild('query', ROSTER)
        .getChildren('item')
        .find((i: Stanza) => i.attrs.jid === peer);
      assert.equal(item?.attrs.subscription, 'both', `${c.jid} sees ${peer} as both`);
    }
  });

  it('exchanges presence in both directions', async () => {
    // Subscribed both ways, each already received the other's initial presence (probes).
    assert.ok(
      bob.received.some((s) => s.is('presence') && s.attrs.from === 'alice@a.test/home' && !s.attrs.type),
    );
    assert.ok(
      alice.received.some((s) => s.is('presence') && s.attrs.from === 'bob@b.test/work' && !s.attrs.type),
    );
    const atBob = bob.waitFor(
      (s) =>
        s.is('presence') &&
        !s.attrs.type &&
        s.attrs.from === 'alice@a.test/home' &&
        s.getChildText('status') === 'from a',
      'alice status',
    );
    await alice.send(xml('presence', {}, xml('status', {}, 'from a')));
    assert.equal((await atBob).getChildText('status'), 'from a');
    const atAlice = alice.waitFor(
      (s) =>
        s.is('presence') &&
        !s.attrs.type &&
        s.attrs.from === 'bob@b.test/work' &&
        s.getChildText('status') === 'from b',
      'bob status',
    );
    await bob.send(xml('presence', {}, xml('status', {}, 'from b')));
    assert.equal((await atAlice).getChildText('status'), 'from b');
  });

  it('exchanges chat messages both ways', async () => {
    await alice.send(
      xml('message', { to: 'bob@b.test', type: 'chat', id: 'm1' }, xml('body', {}, 'hello bob')),
    );
    const m1 = await bob.waitFor(
      (s) => s.is('message') && s.getChildText('body') === 'hello bob',
      'message at bob',
    );
    assert.equal(m1.attrs.from, 'alice@a.test/home');
    await bob.send(
      xml('message', { to: 'alice@a.test/home', type: 'chat', id: 'm2' }, xml('body', {}, 'hi alice')),
    );
    const m2 = await alice.waitFor(
      (s) => s.is('message') && s.getChildText('body') === 'hi alice',
      'message at alice',
    );
    assert.equal(m2.attrs.from, 'bob@b.test/work');
  });

  it("fetches a remote user's vCard", async () => {
    await bob.xmpp.iqCaller.request(
      xml('iq', { type: 'set' }, xml('vCard', { xmlns: 'vcard-temp' }, xml('FN', {}, 'Bob from B'))),
    );
    const vcard = await alice.xmpp.iqCaller.request(
      xml('iq', { type: 'get', to: 'bob@b.test' }, xml('vCard', { xmlns: 'vcard-temp' })),
    );
    assert.equal(vcard.attrs.from, 'bob@b.test');
    assert.equal(vcard.getChild('vCard', 'vcard-temp')?.getChildText('FN'), 'Bob from B');
  });

  it('authenticates each local domain separately towards the same remote domain', async () => {
    a.server.router.route(
      el(
        'message',
        { from: 'msn.a.test', to: 'bob@b.test/work', type: 'headline' },
        el('body', null, 'from the transport'),
      ),
    );
    const m = await bob.waitFor(
      (s) => s.is('message') && s.getChildText('body') === 'from the transport',
      'transport message',
    );
    assert.equal(m.attrs.from, 'msn.a.test');
    assert.ok(s2s(a).links.has('msn.a.test b.test'), 'a link of its own for msn.a.test');
    assert.ok(b.logs.some((l) => /incoming s2s authenticated from=msn\.a\.test .*method=dialback/.test(l)));
  });

  it('with s2s.secureAuth, refuses a server whose certificate does not verify', async () => {
    const service = s2s(a);
    a.config.s2s.secureAuth = true;
    try {
      service.links.get('a.test b.test')?.close();
      await alice.send(
        xml('message', { to: 'bob@b.test/work', type: 'chat', id: 'strict1' }, xml('body', {}, 'strict')),
      );
      const bounce = await alice.waitFor((s) => s.is('message') && s.attrs.id === 'strict1', 'bounce');
      assert.equal(errorCondition(bounce), 'remote-server-not-found');
      assert.ok(a.logs.some((l) => /certificate of b\.test does not verify/.test(l)));
      assert.ok(!bob.received.some((s) => s.getChildText('body') === 'strict'));
    } finally {
      a.config.s2s.secureAuth = false;
    }
  });

  it('closes a link that carries a stanza with a from domain it did not authenticate', async () => {
    // The raw peer really is authenticated as a.test: a's own S2SService
    // makes the key, and b checks it with a (the authoritative server).
    const peer = new RawS2SPeer('a.test', 'b.test');
    try {
      const verdict = await peer.authenticate(s2s(b).ports.starttls!, (id) =>
        s2s(a).keys.key('b.test', 'a.test', id),
      );
      assert.equal(verdict.attrs.type, 'valid');
      peer.write(
        "<message from='mallory@evil.test/x' to='bob@b.test/work' type='chat'><body>forged</body></message>",
      );
      const err = await peer.waitFor((e) => e.name === 'stream:error', 'stream error');
      assert.ok(err.getChild('invalid-from', 'urn:ietf:params:xml:ns:xmpp-streams'), `invalid-from: ${err}`);
      await peer.closed;
    } finally {
      peer.destroy();
    }
    // A genuine message sent afterwards arrives; the forged one never did.
    await alice.send(
      xml('message', { to: 'bob@b.test/work', type: 'chat' }, xml('body', {}, 'after forgery')),
    );
    await bob.waitFor(
      (s) => s.is('message') && s.getChildText('body') === 'after forgery',
      'genuine message',
    );
    assert.ok(!bob.received.some((s) => s.getChildText('body') === 'forged'), 'forged message not delivered');
  });

  it('refuses dialback with a key the authoritative server did not make', async () => {
    const peer = new RawS2SPeer('a.test', 'b.test');
    try {
      const verdict = await peer.authenticate(s2s(b).ports.starttls!, () => 'f'.repeat(64));
      assert.equal(verdict.attrs.type, 'invalid');
      peer.write(
        "<message from='alice@a.test/x' to='bob@b.test/work' type='chat'><body>unauthenticated</body></message>",
      );
      const err = await peer.waitFor((e) => e.name === 'stream:error', 'stream error');
      assert.ok(
        err.getChild('not-authorized', 'urn:ietf:params:xml:ns:xmpp-streams'),
        `not-authorized: ${err}`,
      );
    } finally {
      peer.destroy();
    }
  });

  it('closes a stream that sends to a domain the server does not host', async () => {
    const peer = new RawS2SPeer('a.test', 'b.test');
    try {
      await peer.authenticate(s2s(b).ports.starttls!, (id) => s2s(a).keys.key('b.test', 'a.test', id));
      peer.write(
        "<message from='alice@a.test/x' to='someone@c.test' type='chat'><body>relay me</body></message>",
      );
      const err = await peer.waitFor((e) => e.name === 'stream:error', 'stream error');
      assert.ok(err.getChild('host-unknown', 'urn:ietf:params:xml:ns:xmpp-streams'), `host-unknown: ${err}`);
    } finally {
      peer.destroy();
    }
  });

  it('bounces remote-server-not-found for a domain whose server cannot be reached', async () => {
    a.config.s2s.routes['nowhere.test'] = `127.0.0.1:${await closedPort()}`;
    await alice.send(
      xml('message', { to: 'x@nowhere.test', type: 'chat', id: 'lost1' }, xml('body', {}, 'anyone?')),
    );
    const bounce = await alice.waitFor((s) => s.is('message') && s.attrs.id === 'lost1', 'bounce');
    assert.equal(bounce.attrs.type, 'error');
    assert.equal(bounce.attrs.from, 'x@nowhere.test');
    assert.equal(errorCondition(bounce), 'remote-server-not-found');
  });

  it('bounces remote-server-timeout when the remote server never answers', async () => {
    // Accepts TCP connections and then says nothing.
    const sockets = new Set<import('node:net').Socket>();
    const silent = createServer((sock) => sockets.add(sock));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    try {
      a.config.s2s.routes['silent.test'] = `127.0.0.1:${(silent.address() as { port: number }).port}`;
      await alice.send(
        xml('message', { to: 'x@silent.test', type: 'chat', id: 'lost2' }, xml('body', {}, 'hello?')),
      );
      const bounce = await alice.waitFor((s) => s.is('message') && s.attrs.id === 'lost2', 'bounce', 8000);
      assert.equal(errorCondition(bounce), 'remote-server-timeout');
    } finally {
      for (const sock of sockets) sock.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  it('finds the other server through SRV records, preferring _xmpps-server (direct TLS)', async () => {
    const dns = await FakeDns.start({
      srv: {
        '_xmpps-server._tcp.b.test': [
          { priority: 0, weight: 5, port: s2s(b).ports.directTls!, target: '127.0.0.1' },
        ],
        '_xmpp-server._tcp.b.test': [
          { priority: 0, weight: 5, port: s2s(b).ports.starttls!, target: '127.0.0.1' },
        ],
      },
    });
    const service = s2s(a);
    const oldDns = service.dns;
    const oldRoute = a.config.s2s.routes['b.test'];
    try {
      const resolver = new Resolver();
      resolver.setServers([dns.server]);
      service.dns = resolver;
      delete a.config.s2s.routes['b.test'];
      // Drop the current link so a new one is resolved.
      service.links.get('a.test b.test')?.close();
      await alice.send(xml('message', { to: 'bob@b.test/work', type: 'chat' }, xml('body', {}, 'via srv')));
      await bob.waitFor((s) => s.is('message') && s.getChildText('body') === 'via srv', 'message via SRV');
      assert.ok(dns.queries.includes('_xmpps-server._tcp.b.test/33'), 'asked for _xmpps-server');
      assert.ok(
        a.logs.some((l) => /outgoing s2s connected.*to=b\.test.*directTls=true/.test(l)),
        'connected with direct TLS',
      );
    } finally {
      service.dns = oldDns;
      if (oldRoute) a.config.s2s.routes['b.test'] = oldRoute;
      await dns.close();
    }
  });

  it('closes idle links after s2s.idleTimeout', async () => {
    const service = s2s(a);
    a.config.s2s.idleTimeout = 0.3;
    b.config.s2s.idleTimeout = 0.3;
    try {
      await alice.send(
        xml('message', { to: 'bob@b.test/work', type: 'chat' }, xml('body', {}, 'last words')),
      );
      await bob.waitFor((s) => s.is('message') && s.getChildText('body') === 'last words', 'message');
      assert.ok(service.links.has('a.test b.test'), 'link up');
      await until(() => !service.links.has('a.test b.test'), 'the idle link to close');
      await until(
        () => ![...s2s(b).incoming].some((s) => s.authenticated.has('a.test')),
        "b's end of the link closed",
      );
    } finally {
      a.config.s2s.idleTimeout = 600;
      b.config.s2s.idleTimeout = 600;
    }
    // The next stanza brings a new link up.
    await alice.send(xml('message', { to: 'bob@b.test/work', type: 'chat' }, xml('body', {}, 'again')));
    await bob.waitFor((s) => s.is('message') && s.getChildText('body') === 'again', 'message on a new link');
  });
});
