// The transport on MSNP18 (the default: negotiated from the highest down)
// end to end: offline messages both ways (a message to an offline contact
// is left as an OIM; OIMs waiting for the user arrive with XEP-0203 delay
// from the contact's JID; sapo:noerror still silences failures), contact
// lists kept in the address book services, and a 2005-era server that only
// speaks MSNP11, where the transport negotiates down and offline contacts
// still get the old error.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import { msnGatewayOf } from '../../src/gateway/msn/gateway.ts';
import { msnTransportStatus } from '../../src/gateway/msn/status.ts';
import type { MsnSession } from '../../src/msnp/index.ts';
import type { TestClient } from '../helpers/xmpp-client.ts';
import { type MsnWorld, nextEvent, registeredUser, simLogs, startMsnWorld } from './msn-harness.ts';

const MSN = 'msn.localhost';
const BOB = 'bob%hotmail.com@msn.localhost';
const CAROL = 'carol%hotmail.com@msn.localhost';
const FRANK = 'frank%hotmail.com@msn.localhost';
const DAVE = 'dave%hotmail.com@msn.localhost';
const ERIN = 'erin%hotmail.com@msn.localhost';
const DELAY = 'urn:xmpp:delay';

describe('MSN transport on MSNP18: offline messages and the address book', () => {
  let world: MsnWorld;
  let juliet: TestClient;
  let bob: MsnSession;

  before(async () => {
    world = await startMsnWorld((sim) => {
      for (const [email, nick] of [
        ['alice@hotmail.com', 'Alice'],
        ['bob@hotmail.com', 'Bobby'],
        ['carol@hotmail.com', 'Carol'],
        ['dave@hotmail.com', 'Dave'],
        ['erin@hotmail.com', 'Erin'],
        ['frank@hotmail.com', 'Frank'],
      ] as const) {
        sim.addAccount(email, `${nick.toLowerCase()}pw`, { nickname: nick });
      }
      sim.makeFriends('alice@hotmail.com', 'bob@hotmail.com');
      sim.makeFriends('alice@hotmail.com', 'carol@hotmail.com');
      // Frank is on Alice's list but blocks her: the OIM service refuses her messages to him.
      sim.addContact('alice@hotmail.com', 'frank@hotmail.com');
      sim.addContact('frank@hotmail.com', 'alice@hotmail.com', ['BL']);
    });
    bob = await world.buddy('bob@hotmail.com', 'bobbypw');
    juliet = await registeredUser(world, 'juliet', 'alice@hotmail.com', 'alicepw');
    await juliet.waitFor((s) => s.is('presence') && s.attrs.from === BOB && !s.attrs.type, 'Bob online', 15000);
  });
  after(async () => {
    await juliet?.stop();
    await world?.stop();
  });

  it('logs in with the highest version both sides speak (MSNP18, SSO)', () => {
    assert.equal(msnTransportStatus(world.ts.server)?.users[0]?.protocol, 'MSNP18');
    assert.ok(world.ts.logs.some((l) => /msnp >> NS .*line="USR \d+ SSO S \[redacted\]"/.test(l)));
  });

  it('leaves a message to an offline contact as an offline message, which the contact gets at login', async () => {
    const stored = simLogs(world, /^OIM stored for carol@hotmail\.com$/);
    await juliet.send(xml('message', { to: CAROL, type: 'chat', id: 'oim-1' }, xml('body', {}, 'Call me when you are back ☎')));
    await stored;
    assert.equal(juliet.received.some((s) => s.attrs.id === 'oim-1' && s.attrs.type === 'error'), false);
    // Fetching starts once the login is complete, after login() resolved: listening now is in time.
    const carol = await world.buddy('carol@hotmail.com', 'carolpw');
    const got = await nextEvent(carol, 'offlineMessage', (m) => m.from === 'alice@hotmail.com');
    assert.equal(got.text, 'Call me when you are back ☎');
    assert.equal(got.nickname, 'Alice');
    await carol.logout();
  });

  it('delivers offline messages that waited for the user, from the contact, with XEP-0203 delay', async () => {
    // Juliet goes offline: the transport logs out of MSN.
    const loggedOut = nextEvent(bob, 'presence', (p) => p.email === 'alice@hotmail.com' && p.status === 'FLN');
    await juliet.send(xml('presence', { type: 'unavailable' }));
    await loggedOut;
    const before = Date.now();
    await bob.sendOfflineMessage('alice@hotmail.com', 'Are you there?');
    await bob.sendOfflineMessage('alice@hotmail.com', 'Ping me ✓');
    juliet.received.length = 0;
    const second = juliet.waitFor((s) => s.is('message') && s.getChildText('body') === 'Ping me ✓', 'second OIM', 20000);
    const deleted = simLogs(world, /^rsi DeleteMessages$/);
    await juliet.send(xml('presence'));
    const last = await second;
    // (waitFor takes the stanza it returns out of `received`.)
    const oims = [...juliet.received, last].filter((s) => s.is('message') && s.attrs.from === BOB && s.getChild('delay', DELAY));
    assert.deepEqual(
      oims.map((m) => m.getChildText('body')),
      ['Are you there?', 'Ping me ✓'],
    );
    for (const m of oims) {
      assert.equal(m.attrs.type, 'chat');
      const stamp = Date.parse(m.getChild('delay', DELAY).attrs.stamp);
      assert.ok(stamp >= before - 2000 && stamp <= Date.now(), 'stamped with when Bob wrote it');
      assert.equal(m.getChild('delay', DELAY).attrs.from, MSN);
    }
    // Read once: deleted on the server, so the next login does not repeat them.
    await deleted;
    assert.equal(world.sim.accounts.get('alice@hotmail.com')?.oims.length, 0);
  });

  it('reports an offline message MSN refuses, unless sapo:noerror asks for silence', async () => {
    await juliet.send(
      xml('message', { to: FRANK, type: 'chat', id: 'quiet' }, xml('body', {}, 'shh'), xml('noerror', { xmlns: 'sapo:noerror' })),
    );
    await juliet.send(xml('message', { to: FRANK, type: 'chat', id: 'loud' }, xml('body', {}, 'hello?')));
    const err = await juliet.waitFor((s) => s.is('message') && s.attrs.type === 'error', 'message error', 20000);
    assert.equal(err.attrs.id, 'loud', 'the quiet one failed silently');
    assert.ok(err.getChild('error').getChild('recipient-unavailable', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
    assert.match(err.getChild('error').getChildText('text', 'urn:ietf:params:xml:ns:xmpp-stanzas') ?? '', /did not keep the message/);
  });

  it('stays signed in when the user also signs in to MSN elsewhere (MPOP), and shows the other endpoint', async () => {
    const mine = msnGatewayOf(world.ts.server)!.sessions.get('juliet@localhost')!.msn;
    const status = () => msnTransportStatus(world.ts.server)?.users.find((x) => x.user === 'juliet@localhost');
    // First the endpoint itself, then (once it sent UUX) its name.
    const seen = nextEvent(mine, 'endpoints', (e) => e.endpoints.length === 1 && e.endpoints[0]?.name === 'jabberfly');
    const elsewhere = await world.buddy('alice@hotmail.com', 'alicepw');
    await seen;
    // (The gateway's own listener ran first: the status already says so.)
    assert.deepEqual(status()?.otherEndpoints, ['jabberfly']);
    assert.equal(status()?.state, 'online');
    assert.equal(mine.connected, true);
    assert.equal(juliet.received.some((s) => /another place/.test(s.getChildText('body') ?? '')), false);
    const gone = nextEvent(mine, 'endpoints', (e) => e.endpoints.length === 0);
    await elsewhere.logout();
    await gone;
    assert.deepEqual(status()?.otherEndpoints, []);
  });

  it('keeps the contact list in the address book: subscribe, an add request, approval, unsubscribe', async () => {
    // The address book, the allow list (sharing service), then ADL to the notification server.
    const added = simLogs(world, /^ADL \d+ OK$/);
    const subscribed = juliet.waitFor((s) => s.attrs.from === DAVE && s.attrs.type === 'subscribed', 'subscribed');
    await juliet.send(xml('presence', { to: DAVE, type: 'subscribe' }));
    await subscribed;
    await added;
    let lists = world.sim.getLists('alice@hotmail.com');
    assert.ok(lists.FL.includes('dave@hotmail.com') && lists.AL.includes('dave@hotmail.com'));

    const erin = await world.buddy('erin@hotmail.com', 'erinpw');
    const request = juliet.waitFor((s) => s.attrs.from === ERIN && s.attrs.type === 'subscribe', 'subscribe from Erin');
    await erin.addContact('alice@hotmail.com');
    assert.equal((await request).getChild('nick', 'http://jabber.org/protocol/nick')?.getText(), 'Erin');
    const allowed = simLogs(world, /^ADL \d+ OK$/);
    await juliet.send(xml('presence', { to: ERIN, type: 'subscribed' }));
    await allowed;
    assert.ok(world.sim.getLists('alice@hotmail.com').AL.includes('erin@hotmail.com'));

    const removed = simLogs(world, /^RML \d+ OK$/);
    await juliet.send(xml('presence', { to: DAVE, type: 'unsubscribe' }));
    await removed;
    lists = world.sim.getLists('alice@hotmail.com');
    assert.equal(lists.FL.includes('dave@hotmail.com'), false);
    await erin.logout();
  });
});

describe('MSN transport against a server that speaks MSNP11 at most', () => {
  let world: MsnWorld;
  let juliet: TestClient;

  before(async () => {
    world = await startMsnWorld(
      (sim) => {
        sim.addAccount('alice@hotmail.com', 'alicepw', { nickname: 'Alice' });
        sim.addAccount('carol@hotmail.com', 'carolpw', { nickname: 'Carol' });
        sim.makeFriends('alice@hotmail.com', 'carol@hotmail.com');
      },
      {},
      { protocols: [11, 10, 9, 8] },
    );
    juliet = await registeredUser(world, 'juliet', 'alice@hotmail.com', 'alicepw');
  });
  after(async () => {
    await juliet?.stop();
    await world?.stop();
  });

  it('negotiates down from MSNP18 to MSNP11 (Passport 1.4), and offline contacts still get an error', async () => {
    assert.equal(msnTransportStatus(world.ts.server)?.users[0]?.protocol, 'MSNP11');
    assert.ok(world.ts.logs.some((l) => /line="VER \d+ MSNP18 MSNP17 .* MSNP8 CVR0"/.test(l)));
    await juliet.send(xml('message', { to: CAROL, type: 'chat', id: 'no-oim' }, xml('body', {}, 'hello?')));
    const err = await juliet.waitFor((s) => s.attrs.id === 'no-oim', 'error', 20000);
    assert.equal(err.attrs.type, 'error');
    assert.ok(err.getChild('error').getChild('recipient-unavailable', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
  });
});
