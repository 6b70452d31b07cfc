// Contact-list changes through the transport: XMPP subscriptions become
// MSN list changes and back, roster-subsync for users without direct sync,
// the server's guard against forged roster-subsync, and failures reported
// to the user.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import type { MsnSession } from '../../src/msnp/index.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';
import type { LogEntry } from '../msn-sim/simulator.ts';
import { type MsnWorld, nextEvent, registeredUser, startMsnWorld } from './msn-harness.ts';

const DAVE = 'dave%hotmail.com@msn.localhost';
const ERIN = 'erin%hotmail.com@msn.localhost';
const SUBSYNC = 'http://delx.cjb.net/protocol/roster-subsync';

/** Resolves when the simulator's notification server sends `alice` a line matching `pattern`. */
function nsSends(world: MsnWorld, pattern: RegExp, ms = 8000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      world.sim.off('log', onLog);
      reject(new Error(`timed out waiting for the NS to send ${pattern}`));
    }, ms);
    const onLog = (e: LogEntry) => {
      if (e.server === 'NS' && e.direction === 'out' && e.email === 'alice@hotmail.com' && pattern.test(e.text)) {
        clearTimeout(timer);
        world.sim.off('log', onLog);
        resolve();
      }
    };
    world.sim.on('log', onLog);
  });
}

describe('MSN transport contact lists', () => {
  let world: MsnWorld;
  let juliet: TestClient;
  let erin: MsnSession;

  before(async () => {
    world = await startMsnWorld((sim) => {
      sim.addAccount('alice@hotmail.com', 'alicepw');
      sim.addAccount('dave@hotmail.com', 'davepw', { nickname: 'Dave' });
      sim.addAccount('erin@hotmail.com', 'erinpw', { nickname: 'Erin' });
      sim.addAccount('frank@hotmail.com', 'frankpw', { nickname: 'Frank' });
      sim.addAccount('gina@hotmail.com', 'ginapw');
      sim.makeFriends('gina@hotmail.com', 'frank@hotmail.com');
      // MSNP11: list edits are NS commands (ADC/REM) here; the MSNP13+ address-book path is in msn-offline.test.ts.
    }, { msn: { protocols: [11] } });
    erin = await world.buddy('erin@hotmail.com', 'erinpw');
    juliet = await registeredUser(world, 'juliet', 'alice@hotmail.com', 'alicepw');
  });
  after(async () => {
    await juliet?.stop();
    await world?.stop();
  });

  it('adds an MSN contact when the user subscribes to its JID', async () => {
    const subscribed = juliet.waitFor((s) => s.attrs.from === DAVE && s.attrs.type === 'subscribed', 'subscribed');
    const added = nsSends(world, /^ADC \d+ FL N=dave@hotmail\.com/);
    await juliet.send(xml('presence', { to: DAVE, type: 'subscribe' }));
    await subscribed;
    await added;
    assert.ok(world.sim.getLists('alice@hotmail.com').FL.includes('dave@hotmail.com'));
    assert.ok(world.sim.getLists('alice@hotmail.com').AL.includes('dave@hotmail.com'));
  });

  it('passes an MSN add-request on as a subscription request, and its approval back to MSN', async () => {
    const request = juliet.waitFor((s) => s.attrs.from === ERIN && s.attrs.type === 'subscribe', 'subscribe from Erin');
    await erin.addContact('alice@hotmail.com', 'FL');
    const req = await request;
    assert.equal(req.getChild('nick', 'http://jabber.org/protocol/nick')?.getText(), 'Erin');
    const allowed = nsSends(world, /^ADC \d+ AL N=erin@hotmail\.com/);
    await juliet.send(xml('presence', { to: ERIN, type: 'subscribed' }));
    await allowed;
    assert.ok(world.sim.getLists('alice@hotmail.com').AL.includes('erin@hotmail.com'));
  });

  it('removes the MSN contact when the user unsubscribes', async () => {
    const removed = nsSends(world, /^REM \d+ FL/);
    await juliet.send(xml('presence', { to: DAVE, type: 'unsubscribe' }));
    await removed;
    assert.equal(world.sim.getLists('alice@hotmail.com').FL.includes('dave@hotmail.com'), false);
  });

  it('strips a roster-subsync payload that does not come from a registered gateway', async () => {
    await world.ts.addUser('mallory', 'pw');
    const mallory = await connect({ port: world.ts.port, username: 'mallory', password: 'pw' });
    await mallory.send(
      xml(
        'presence',
        { to: 'juliet@localhost', type: 'subscribe' },
        xml('x', { xmlns: SUBSYNC }, xml('item', { name: 'Totally legit', subscription: 'both' })),
      ),
    );
    const got = await juliet.waitFor((s) => s.attrs.from === 'mallory@localhost' && s.attrs.type === 'subscribe', 'request');
    assert.equal(got.getChild('x', SUBSYNC), undefined);
    await mallory.stop();
  });

  it('offers contacts with roster-subsync when direct roster sync is turned off', async () => {
    await world.ts.addUser('romeo', 'pw');
    const romeo = await connect({ port: world.ts.port, username: 'romeo', password: 'pw' });
    await romeo.send(xml('presence'));
    const form = xml(
      'x',
      { xmlns: 'jabber:x:data', type: 'submit' },
      xml('field', { var: 'FORM_TYPE' }, xml('value', {}, 'jabber:iq:register')),
      xml('field', { var: 'username' }, xml('value', {}, 'gina@hotmail.com')),
      xml('field', { var: 'password' }, xml('value', {}, 'ginapw')),
      xml('field', { var: 'directsync' }, xml('value', {}, '0')),
    );
    await romeo.send(xml('iq', { type: 'set', id: 'r1', to: 'msn.localhost' }, xml('query', { xmlns: 'jabber:iq:register' }, form)));
    assert.equal((await romeo.waitFor((s) => s.attrs.id === 'r1', 'register result', 10000)).attrs.type, 'result');
    const offer = await romeo.waitFor(
      (s) => s.attrs.from === 'frank%hotmail.com@msn.localhost' && s.attrs.type === 'subscribe',
      'roster-subsync offer',
      10000,
    );
    const item = offer.getChild('x', SUBSYNC)?.getChild('item');
    assert.equal(item?.attrs.subscription, 'both');
    assert.equal(item?.attrs.name, 'Frank');
    // Nothing was written into Romeo's roster behind his back.
    await romeo.send(xml('iq', { type: 'get', id: 'ro' }, xml('query', { xmlns: 'jabber:iq:roster' })));
    const roster = await romeo.waitFor((s) => s.attrs.id === 'ro', 'roster');
    const jids = roster.getChild('query').getChildren('item').map((i: Element) => i.attrs.jid);
    assert.equal(jids.includes('frank%hotmail.com@msn.localhost'), false);
    await romeo.stop();
  });

  it('tells the user when MSN logs them out because of another login, without retrying', async () => {
    const told = juliet.waitFor(
      (s) => s.is('message') && s.attrs.from === 'msn.localhost' && /another place/.test(s.getChildText('body') ?? ''),
      'notice from the gateway',
    );
    const other = await world.buddy('alice@hotmail.com', 'alicepw');
    await told;
    await juliet.waitFor((s) => s.attrs.from === 'msn.localhost' && s.attrs.type === 'unavailable', 'gateway offline');
    assert.equal(other.connected, true);
    await other.logout();
  });

  it('survives a corrupt and a decompression-bomb vCard photo', async () => {
    // Log in again with a fresh presence to the gateway.
    await juliet.send(xml('presence', { to: 'msn.localhost' }));
    await juliet.waitFor((s) => s.attrs.from === 'msn.localhost' && !s.attrs.type, 'gateway online again', 10000);
    // A 20000×20000 PNG header: tiny file, enormous image.
    const bomb = Buffer.from(
      `89504e470d0a1a0a0000000d4948445200004e2000004e200806000000${'0'.repeat(16)}`,
      'hex',
    );
    for (const [label, bytes] of [['corrupt', Buffer.from('not an image at all')], ['bomb', bomb]] as const) {
      await juliet.send(
        xml(
          'iq',
          { type: 'set', id: `v-${label}` },
          xml('vCard', { xmlns: 'vcard-temp' }, xml('PHOTO', {}, xml('TYPE', {}, 'image/png'), xml('BINVAL', {}, bytes.toString('base64')))),
        ),
      );
      await juliet.waitFor((s) => s.attrs.id === `v-${label}`, 'vcard stored');
      await juliet.send(xml('presence', {}, xml('x', { xmlns: 'vcard-temp:x:update' }, xml('photo', {}, label))));
    }
    // Still serving: a message reaches an MSN contact afterwards.
    const heard = nextEvent(erin, 'message', (m) => m.text === 'still here');
    await juliet.send(xml('message', { to: ERIN, type: 'chat' }, xml('body', {}, 'still here')));
    await heard;
    assert.equal(world.sim.getPresence('alice@hotmail.com')?.msnObject ?? null, null);
  });
});
