// The MSN transport and PEP: a user's XEP-0084 avatar and XEP-0172 nick
// become the MSN display picture and friendly name; an MSN contact's
// display picture reaches the user as XEP-0084 metadata from the contact
// JID (to the resource whose caps ask for it), with data and nick items to
// fetch, the same picture as the contact's vCard PHOTO and presence hash.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import sharp from 'sharp';
import type { MsnSession } from '../../src/msnp/index.ts';
import { eventItems, type PepClient, pepClient, publish } from '../pep/pep-helpers.ts';
import { type MsnWorld, nextEvent, startMsnWorld } from './msn-harness.ts';

const MSN = 'msn.localhost';
const BOB = 'bob%hotmail.com@msn.localhost';
const DATA = 'urn:xmpp:avatar:data';
const METADATA = 'urn:xmpp:avatar:metadata';
const NICK = 'http://jabber.org/protocol/nick';
const PUBSUB = 'http://jabber.org/protocol/pubsub';
const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');

describe('MSN transport with PEP', { timeout: 120_000 }, () => {
  let world: MsnWorld;
  let juliet: PepClient;
  let bob: MsnSession;

  before(async () => {
    world = await startMsnWorld((sim) => {
      sim.addAccount('alice@hotmail.com', 'alicepw', { nickname: 'Alice' });
      sim.addAccount('bob@hotmail.com', 'bobpw', { nickname: 'Bobby' });
      sim.makeFriends('alice@hotmail.com', 'bob@hotmail.com');
    });
    await world.ts.addUser('juliet', 'juliet-pw');
    juliet = await pepClient(world.ts.port, 'juliet', 'phone');
    await juliet.iq('get', undefined, xml('query', { xmlns: 'jabber:iq:roster' }));
    await juliet.available([`${METADATA}+notify`]);
    bob = await world.buddy('bob@hotmail.com', 'bobpw');
    const online = juliet.waitFor((s) => s.is('presence') && s.attrs.from === MSN && !s.attrs.type, 'gateway online', 20_000);
    const reg = await juliet.iq(
      'set',
      MSN,
      xml('query', { xmlns: 'jabber:iq:register' }, xml('username', {}, 'alice@hotmail.com'), xml('password', {}, 'alicepw')),
    );
    assert.equal(reg.attrs.type, 'result');
    await online;
  });

  after(async () => {
    await juliet?.stop();
    await world?.stop();
  });

  it('puts the user\'s PEP nick and avatar on MSN', async () => {
    const renamed = nextEvent(bob, 'nickname', (n) => n.email === 'alice@hotmail.com' && n.nickname === 'Juliet P.');
    await juliet.iq('set', undefined, publish(NICK, 'current', xml('nick', { xmlns: NICK }, 'Juliet P.')));
    await renamed;

    const picture = await sharp({ create: { width: 200, height: 100, channels: 3, background: { r: 0, g: 90, b: 200 } } }).png().toBuffer();
    const id = sha1(picture);
    const pictured = nextEvent(bob, 'avatar', (a) => a.email === 'alice@hotmail.com' && !!a.msnObject);
    await juliet.iq('set', undefined, publish(DATA, id, xml('data', { xmlns: DATA }, picture.toString('base64'))));
    await juliet.iq(
      'set',
      undefined,
      publish(METADATA, id, xml('metadata', { xmlns: METADATA }, xml('info', { id, bytes: String(picture.length), type: 'image/png' }))),
    );
    await pictured;
    const onMsn = await sharp(await bob.fetchAvatar('alice@hotmail.com')).metadata();
    assert.deepEqual([onMsn.format, onMsn.width, onMsn.height], ['png', 96, 96]);
  });

  it('offers an MSN contact\'s display picture as XEP-0084 from the contact JID', async () => {
    const png = await sharp({ create: { width: 40, height: 30, channels: 3, background: { r: 250, g: 200, b: 0 } } }).png().toBuffer();
    const id = sha1(png);
    const told = juliet.waitFor((s) => s.attrs.from === BOB && eventItems(s, METADATA)?.getChild('item')?.attrs.id === id, 'avatar metadata from Bob', 20_000);
    await bob.setAvatar(png);
    const event = await told;
    assert.equal(event.attrs.to, juliet.jid, 'to the resource that asked for avatars');
    const info = eventItems(event, METADATA)!.getChild('item').getChild('metadata', METADATA).getChild('info');
    assert.deepEqual([info.attrs.type, info.attrs.bytes, info.attrs.width, info.attrs.height], ['image/png', String(png.length), '40', '30']);

    const data = await juliet.iq('get', BOB, xml('pubsub', { xmlns: PUBSUB }, xml('items', { node: DATA }, xml('item', { id }))));
    const b64 = data.getChild('pubsub', PUBSUB).getChild('items').getChild('item').getChild('data', DATA).getText();
    assert.ok(Buffer.from(b64, 'base64').equals(png));
    const meta = await juliet.iq('get', BOB, xml('pubsub', { xmlns: PUBSUB }, xml('items', { node: METADATA })));
    assert.equal(meta.getChild('pubsub', PUBSUB).getChild('items').getChild('item').attrs.id, id);
    const nick = await juliet.iq('get', BOB, xml('pubsub', { xmlns: PUBSUB }, xml('items', { node: NICK })));
    assert.equal(nick.getChild('pubsub', PUBSUB).getChild('items').getChild('item').getChildText('nick', NICK), 'Bobby');
    // One picture, one hash: the vCard PHOTO is the same bytes.
    const card = (await juliet.iq('get', BOB, xml('vCard', { xmlns: 'vcard-temp' }))).getChild('vCard', 'vcard-temp');
    assert.equal(sha1(Buffer.from(card.getChild('PHOTO').getChildText('BINVAL'), 'base64')), id);
  });
});
