// XEP-0215 external service discovery against Debian's coturn: a client
// asks jabberfly for its STUN/TURN services, and the time-limited TURN
// credentials it gets are accepted by coturn (started by the test on
// loopback with the shared secret) for real allocations, over UDP and TCP;
// altered or expired ones are refused.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import { turnCredentials } from '../../src/modules/external-services.ts';
import { type Coturn, startCoturn, stunBinding, uclient } from '../helpers/coturn.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

const EXTDISCO = 'urn:xmpp:extdisco:2';
const SECRET = 'test-turn-secret-4f1c9a';
const LIFETIME = 3600;

function services(c: TestClient, type?: string): Promise<Element[]> {
  return c.xmpp.iqCaller
    .request(xml('iq', { type: 'get', to: 'localhost' }, xml('services', { xmlns: EXTDISCO, type })))
    .then((r: Element) => r.getChild('services', EXTDISCO)!.getChildren('service'));
}

describe('XEP-0215 with coturn', { timeout: 120_000 }, () => {
  let coturn: Coturn;
  let ts: TestServer;
  let alice: TestClient;

  before(async () => {
    coturn = await startCoturn(SECRET, 'localhost');
    ts = await startServer({
      turn: {
        host: '127.0.0.1',
        port: coturn.port,
        secret: SECRET,
        credentialLifetime: LIFETIME,
        stun: ['stun.example.net', 'stun2.example.net:3479'],
      },
    });
    await ts.addUser('alice', 'pw');
    alice = await connect({ port: ts.port, username: 'alice', password: 'pw' });
  });
  after(async () => {
    await alice?.stop();
    await ts?.stop();
    await coturn?.stop();
  });

  it('announces the feature and lists STUN and TURN with time-limited credentials', async () => {
    const info = await alice.xmpp.iqCaller.request(
      xml('iq', { type: 'get', to: 'localhost' }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })),
    );
    assert.ok(info.getChild('query')!.getChildren('feature').some((f: Element) => f.attrs.var === EXTDISCO));

    const list = await services(alice);
    const brief = list.map((s) => `${s.attrs.type} ${s.attrs.host}:${s.attrs.port}/${s.attrs.transport}`);
    assert.deepEqual(brief, [
      `stun 127.0.0.1:${coturn.port}/udp`,
      'stun stun.example.net:3478/udp',
      'stun stun2.example.net:3479/udp',
      `turn 127.0.0.1:${coturn.port}/udp`,
      `turn 127.0.0.1:${coturn.port}/tcp`,
    ]);
    for (const s of list.filter((x) => x.attrs.type === 'stun')) assert.equal(s.attrs.username, undefined);
    const turn = list.find((s) => s.attrs.type === 'turn')!;
    assert.equal(turn.attrs.restricted, '1');
    const [expiry, user] = turn.attrs.username.split(':');
    assert.equal(user, 'alice@localhost');
    const expires = Date.parse(turn.attrs.expires);
    assert.equal(expires, Number(expiry) * 1000);
    assert.ok(Math.abs(expires - (Date.now() + LIFETIME * 1000)) < 60_000, turn.attrs.expires);

    // Only TURN when asked for TURN.
    assert.deepEqual(
      (await services(alice, 'turn')).map((s) => s.attrs.type),
      ['turn', 'turn'],
    );
  });

  it('the advertised STUN service answers a Binding request', async () => {
    const stun = (await services(alice, 'stun'))[0]!;
    const mapped = await stunBinding(stun.attrs.host, Number(stun.attrs.port), 10_000);
    assert.match(mapped, /^127\.0\.0\.1:\d+$/);
  });

  it('coturn accepts the credentials for allocations over UDP and TCP', async () => {
    const [udp, tcp] = await services(alice, 'turn');
    const overUdp = await uclient(Number(udp!.attrs.port), udp!.attrs.username, udp!.attrs.password);
    assert.equal(overUdp.code, 0, overUdp.output);
    assert.match(overUdp.output, /tot_recv_msgs=[1-9]/);
    const overTcp = await uclient(Number(tcp!.attrs.port), tcp!.attrs.username, tcp!.attrs.password, true);
    assert.equal(overTcp.code, 0, overTcp.output);
  });

  it('coturn refuses altered and expired credentials', async () => {
    const [udp] = await services(alice, 'turn');
    const wrongPassword = await uclient(coturn.port, udp!.attrs.username, `${udp!.attrs.password.slice(0, -4)}AAA=`);
    assert.notEqual(wrongPassword.code, 0);
    assert.match(wrongPassword.output, /Cannot complete Allocation/);
    // Another user's name with alice's password.
    const otherUser = await uclient(coturn.port, udp!.attrs.username.replace('alice', 'mallory'), udp!.attrs.password);
    assert.notEqual(otherUser.code, 0);
    // Minted the same way, but already expired.
    const old = turnCredentials(SECRET, 'alice@localhost', -60);
    const expired = await uclient(coturn.port, old.username, old.password);
    assert.notEqual(expired.code, 0);
  });

  it('mints fresh credentials for one service (XEP-0215 §3.3)', async () => {
    const reply = await alice.xmpp.iqCaller.request(
      xml(
        'iq',
        { type: 'get', to: 'localhost' },
        xml('credentials', { xmlns: EXTDISCO }, xml('service', { host: '127.0.0.1', type: 'turn' })),
      ),
    );
    const s = reply.getChild('credentials', EXTDISCO)!.getChild('service')!;
    assert.equal(s.attrs.type, 'turn');
    // The same scheme coturn accepted above: HMAC-SHA1 of the username with the shared secret.
    assert.equal(s.attrs.password, createHmac('sha1', SECRET).update(s.attrs.username).digest('base64'));
    assert.match(s.attrs.username, /^\d+:alice@localhost$/);

    const unknown = await alice.xmpp.iqCaller
      .request(
        xml(
          'iq',
          { type: 'get', to: 'localhost' },
          xml('credentials', { xmlns: EXTDISCO }, xml('service', { host: 'turn.elsewhere.example', type: 'turn' })),
        ),
      )
      .then(
        () => assert.fail('expected item-not-found'),
        (e: { condition?: string }) => e.condition,
      );
    assert.equal(unknown, 'item-not-found');
  });

  it('a server without turn settings offers nothing', async () => {
    const plain = await startServer();
    try {
      await plain.addUser('bob', 'pw');
      const bob = await connect({ port: plain.port, username: 'bob', password: 'pw' });
      try {
        const condition = await services(bob).then(
          () => 'answered',
          (e: { condition?: string }) => e.condition,
        );
        assert.equal(condition, 'service-unavailable');
        assert.equal(plain.server.hosts.get('localhost')!.features.has(EXTDISCO), false);
      } finally {
        await bob.stop();
      }
    } finally {
      await plain.stop();
    }
  });
});
