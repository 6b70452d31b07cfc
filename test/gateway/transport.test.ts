// End to end through the in-process MSN transport: a real XMPP client
// (@xmpp/client) on one side; the MSN simulator and MsnSession buddies on
// the other. The steps build on each other, as a user's day would.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import sharp from 'sharp';
import type { MsnSession } from '../../src/msnp/index.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';
import { type MsnWorld, nextEvent, startMsnWorld } from './msn-harness.ts';

const MSN = 'msn.localhost';
const BOB = 'bob%hotmail.com@msn.localhost';
const CAROL = 'carol%hotmail.com@msn.localhost';
const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');

let world: MsnWorld;
let juliet: TestClient;
let bob: MsnSession;
let iqId = 0;

async function iq(type: 'get' | 'set', to: string | undefined, payload: Element): Promise<Element> {
  const id = `t${++iqId}`;
  await juliet.send(xml('iq', { type, to, id }, payload));
  return juliet.waitFor((s) => s.is('iq') && s.attrs.id === id, `iq ${id}`, 10000);
}

function rosterPush(jid: string, pred: (item: Element) => boolean = () => true): Promise<Element> {
  return juliet
    .waitFor(
      (s) => {
        const item = s.is('iq') && s.attrs.type === 'set' ? s.getChild('query', 'jabber:iq:roster')?.getChild('item') : undefined;
        return item?.attrs.jid === jid && pred(item);
      },
      `roster push for ${jid}`,
      10000,
    )
    .then((s) => s.getChild('query').getChild('item'));
}

function presenceFrom(jid: string, pred: (p: Element) => boolean = () => true, ms = 10000): Promise<Element> {
  return juliet.waitFor((s) => s.is('presence') && s.attrs.from === jid && pred(s), `presence from ${jid}`, ms);
}

describe('MSN transport', () => {
  before(async () => {
    world = await startMsnWorld((sim) => {
      sim.addAccount('alice@hotmail.com', 'alicepw', { nickname: 'Alice' });
      sim.addAccount('bob@hotmail.com', 'bobpw', { nickname: 'Bobby' });
      sim.addAccount('carol@hotmail.com', 'carolpw', { nickname: 'Carol' });
      sim.addContact('alice@hotmail.com', 'bob@hotmail.com', ['FL', 'AL'], { nickname: 'Bobby', groups: ['Friends'] });
      sim.addContact('bob@hotmail.com', 'alice@hotmail.com');
      sim.makeFriends('alice@hotmail.com', 'carol@hotmail.com');
    }, {}, { offlineMessages: false }); // a server without OIM: messages to offline contacts fail as before
    await world.ts.addUser('juliet', 'pw');
    juliet = await connect({ port: world.ts.port, username: 'juliet', password: 'pw', resource: 'laptop' });
    await iq('get', undefined, xml('query', { xmlns: 'jabber:iq:roster' }));
    await juliet.send(xml('presence', {}, xml('show', {}, 'away'), xml('priority', {}, '5')));
    bob = await world.buddy('bob@hotmail.com', 'bobpw');
  });
  after(async () => {
    await juliet?.stop();
    await world?.stop();
  });

  it('is a gateway in service discovery', async () => {
    const info = await iq('get', MSN, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' }));
    const identity = info.getChild('query').getChild('identity');
    assert.equal(identity.attrs.category, 'gateway');
    assert.equal(identity.attrs.type, 'msn');
    const features = info.getChild('query').getChildren('feature').map((f: Element) => f.attrs.var);
    for (const f of ['jabber:iq:register', 'jabber:iq:gateway', 'vcard-temp']) assert.ok(features.includes(f), f);
  });

  it('translates addresses with jabber:iq:gateway', async () => {
    const form = await iq('get', MSN, xml('query', { xmlns: 'jabber:iq:gateway' }));
    assert.ok(form.getChild('query').getChildText('prompt'));
    const r = await iq('set', MSN, xml('query', { xmlns: 'jabber:iq:gateway' }, xml('prompt', {}, 'Some.One@Hotmail.com')));
    assert.equal(r.getChild('query').getChildText('jid'), 'some.one%hotmail.com@msn.localhost');
  });

  it('offers a registration form and refuses a wrong MSN password with not-authorized', async () => {
    const form = await iq('get', MSN, xml('query', { xmlns: 'jabber:iq:register' }));
    const q = form.getChild('query');
    assert.ok(q.getChild('username') && q.getChild('password') && q.getChild('instructions'));
    assert.ok(q.getChild('x', 'jabber:x:data'));
    const bad = await iq(
      'set',
      MSN,
      xml('query', { xmlns: 'jabber:iq:register' }, xml('username', {}, 'alice@hotmail.com'), xml('password', {}, 'wrong')),
    );
    assert.equal(bad.attrs.type, 'error');
    assert.ok(bad.getChild('error').getChild('not-authorized', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
  });

  it('registers, logs in, and fills the roster with MSN contacts without client action', async () => {
    const gatewayItem = rosterPush(MSN, (i) => i.attrs.subscription === 'both');
    const bobItem = rosterPush(BOB);
    const gatewayOnline = presenceFrom(MSN, (p) => !p.attrs.type);
    // The presence Juliet had before registering applies from the first login.
    const away = nextEvent(bob, 'presence', (p) => p.email === 'alice@hotmail.com' && p.status === 'AWY');
    const ok = await iq(
      'set',
      MSN,
      xml('query', { xmlns: 'jabber:iq:register' }, xml('username', {}, 'alice@hotmail.com'), xml('password', {}, 'alicepw')),
    );
    assert.equal(ok.attrs.type, 'result');
    await gatewayItem;
    await gatewayOnline;
    await away;
    const item = await bobItem;
    assert.equal(item.attrs.name, 'Bobby');
    assert.equal(item.attrs.subscription, 'both');
    assert.deepEqual(item.getChildren('group').map((g: Element) => g.getText()), ['Friends']);
    // The MSN password is not stored in clear.
    const stored = await world.ts.server.storage.keyValue<Record<string, unknown>>('msn-registrations').get('juliet@localhost');
    assert.ok(stored);
    assert.equal(JSON.stringify(stored).includes('alicepw'), false);
  });

  it('maps the user\'s presence to an MSN status and personal message', async () => {
    const seen = nextEvent(bob, 'presence', (p) => p.email === 'alice@hotmail.com' && p.status === 'BSY');
    const psm = nextEvent(bob, 'personalMessage', (p) => p.email === 'alice@hotmail.com' && p.text === 'In a meeting');
    await juliet.send(xml('presence', {}, xml('show', {}, 'dnd'), xml('status', {}, 'In a meeting'), xml('priority', {}, '5')));
    await seen;
    await psm;
  });

  it('maps a contact\'s MSN status, personal message and nickname to presence', async () => {
    const p = presenceFrom(BOB, (s) => s.getChildText('show') === 'away' && s.getChildText('status') === 'Out for lunch');
    await bob.setPersonalMessage('Out for lunch');
    await bob.setStatus('AWY');
    const presence = await p;
    assert.equal(presence.getChild('nick', 'http://jabber.org/protocol/nick')?.getText(), 'Bobby');
  });

  it('carries chat both ways', async () => {
    const got = nextEvent(bob, 'message', (m) => m.from === 'alice@hotmail.com');
    await juliet.send(xml('message', { to: BOB, type: 'chat' }, xml('body', {}, 'Hello Bob — ünïcode ✓')));
    assert.equal((await got).text, 'Hello Bob — ünïcode ✓');
    const reply = juliet.waitFor((s) => s.is('message') && s.attrs.from === BOB && !!s.getChildText('body'), 'reply');
    await bob.sendMessage('alice@hotmail.com', 'Hi Juliet!');
    const m = await reply;
    assert.equal(m.getChildText('body'), 'Hi Juliet!');
    assert.equal(m.attrs.type, 'chat');
  });

  it('carries typing notifications both ways', async () => {
    const typing = nextEvent(bob, 'typing', (t) => t.from === 'alice@hotmail.com');
    await juliet.send(xml('message', { to: BOB, type: 'chat' }, xml('composing', { xmlns: 'http://jabber.org/protocol/chatstates' })));
    await typing;
    const composing = juliet.waitFor(
      (s) => s.attrs.from === BOB && !!s.getChild('composing', 'http://jabber.org/protocol/chatstates'),
      'composing',
    );
    await bob.sendTyping('alice@hotmail.com');
    const c = await composing;
    assert.ok(c.getChild('x', 'jabber:x:event')?.getChild('composing'), 'XEP-0022 composing event too');
  });

  it('returns an error for an offline contact, unless sapo:noerror asks otherwise', async () => {
    await juliet.send(
      xml('message', { to: CAROL, type: 'chat', id: 'quiet' }, xml('body', {}, 'shh'), xml('noerror', { xmlns: 'sapo:noerror' })),
    );
    await juliet.send(xml('message', { to: CAROL, type: 'chat', id: 'loud' }, xml('body', {}, 'hello?')));
    const err = await juliet.waitFor((s) => s.is('message') && s.attrs.type === 'error', 'message error', 40000);
    // The first error to arrive is for the second message: the first was silenced.
    assert.equal(err.attrs.id, 'loud');
    assert.ok(err.getChild('error').getChild('recipient-unavailable', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
  });

  it('fetches a contact\'s display picture as a PNG vCard PHOTO and announces its hash', async () => {
    const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 200, g: 20, b: 90 } } })
      .png()
      .toBuffer();
    const withHash = presenceFrom(BOB, (p) => p.getChild('x', 'vcard-temp:x:update')?.getChildText('photo') === sha1(png));
    await bob.setAvatar(png);
    await withHash;
    const r = await iq('get', BOB, xml('vCard', { xmlns: 'vcard-temp' }));
    const vcard = r.getChild('vCard', 'vcard-temp');
    assert.equal(vcard.getChildText('NICKNAME'), 'Bobby');
    assert.equal(vcard.getChild('PHOTO').getChildText('TYPE'), 'image/png');
    assert.ok(Buffer.from(vcard.getChild('PHOTO').getChildText('BINVAL'), 'base64').equals(png));
  });

  it('puts the user\'s vCard nickname and photo on MSN', async () => {
    const jpeg = await sharp({ create: { width: 300, height: 200, channels: 3, background: { r: 10, g: 120, b: 250 } } })
      .jpeg()
      .toBuffer();
    const set = await iq(
      'set',
      undefined,
      xml(
        'vCard',
        { xmlns: 'vcard-temp' },
        xml('NICKNAME', {}, 'Juliet C.'),
        xml('PHOTO', {}, xml('TYPE', {}, 'image/jpeg'), xml('BINVAL', {}, jpeg.toString('base64'))),
      ),
    );
    assert.equal(set.attrs.type, 'result');
    const renamed = nextEvent(bob, 'nickname', (n) => n.email === 'alice@hotmail.com' && n.nickname === 'Juliet C.');
    const pictured = nextEvent(bob, 'avatar', (a) => a.email === 'alice@hotmail.com' && !!a.msnObject);
    await juliet.send(
      xml(
        'presence',
        {},
        xml('priority', {}, '5'),
        xml('x', { xmlns: 'vcard-temp:x:update' }, xml('photo', {}, sha1(jpeg)), xml('nickname', {}, 'Juliet C.')),
      ),
    );
    await renamed;
    await pictured;
    const picture = await bob.fetchAvatar('alice@hotmail.com');
    const meta = await sharp(picture).metadata();
    assert.equal(meta.format, 'png');
    assert.equal(meta.width, 96);
    assert.equal(meta.height, 96);
  });

  it('comes back by itself after the MSN server restarts', async () => {
    juliet.received.length = 0; // only what happens from here on counts
    const down = presenceFrom(BOB, (p) => p.attrs.type === 'unavailable', 15000);
    const reconnecting = presenceFrom(MSN, (p) => p.getChildText('show') === 'xa', 15000);
    await world.sim.restart();
    await down;
    await reconnecting;
    // The transport logs in again on its own: the gateway is plainly available again...
    await presenceFrom(MSN, (p) => !p.attrs.type && !p.getChild('show'), 30000);
    // ...and once Bob's own client is back too, his presence and his messages flow again.
    if (!bob.connected) await nextEvent(bob, 'connected', () => true, 30000);
    await presenceFrom(BOB, (p) => p.attrs.type !== 'unavailable', 15000);
    const back = juliet.waitFor((s) => s.attrs.from === BOB && s.getChildText('body') === 'back again', 'message after restart');
    await bob.sendMessage('alice@hotmail.com', 'back again');
    await back;
  });

  it('unregisters: logs out and removes the transport\'s contacts from the roster', async () => {
    const removedBob = rosterPush(BOB, (i) => i.attrs.subscription === 'remove');
    const removedGw = rosterPush(MSN, (i) => i.attrs.subscription === 'remove');
    const offline = nextEvent(bob, 'presence', (p) => p.email === 'alice@hotmail.com' && p.status === 'FLN');
    const r = await iq('set', MSN, xml('query', { xmlns: 'jabber:iq:register' }, xml('remove')));
    assert.equal(r.attrs.type, 'result');
    await removedBob;
    await removedGw;
    await offline;
    assert.equal(world.sim.isOnline('alice@hotmail.com'), false);
  });
});
