// Avatars across XEP-0084, vCard PHOTO and XEP-0153 hashes (XEP-0398): a
// PEP avatar shows in the vCard (to who may see it) and as the presence
// hash; a vCard PHOTO from a legacy client becomes a PEP avatar that
// subscribed clients are told about.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import sharp from 'sharp';
import { RosterStore } from '../../src/storage/roster.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { errorOf, eventItems, type PepClient, pepClient, publish } from './pep-helpers.ts';

const DATA = 'urn:xmpp:avatar:data';
const METADATA = 'urn:xmpp:avatar:metadata';
const UPDATE = 'vcard-temp:x:update';
const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');

describe('avatars: XEP-0084, vCard and XEP-0153 (XEP-0398)', { timeout: 120_000 }, () => {
  let ts: TestServer;
  let alice: PepClient;
  let bob: PepClient;
  let dave: PepClient;
  let png: Buffer;

  before(async () => {
    ts = await startServer();
    for (const u of ['alice', 'bob', 'dave']) await ts.addUser(u, `${u}-pw`);
    const rosters = ts.server.store(RosterStore);
    await rosters.setItem('alice@localhost', { jid: 'bob@localhost', subscription: 'both', groups: [] });
    await rosters.setItem('bob@localhost', { jid: 'alice@localhost', subscription: 'both', groups: [] });
    png = await sharp({ create: { width: 32, height: 32, channels: 3, background: { r: 1, g: 2, b: 3 } } }).png().toBuffer();
    alice = await pepClient(ts.port, 'alice', 'one');
    bob = await pepClient(ts.port, 'bob', 'desk');
    dave = await pepClient(ts.port, 'dave', 'x');
    await bob.available([`${METADATA}+notify`]);
    await alice.available([]);
    await bob.waitFor((s) => s.is('presence') && s.attrs.from === alice.jid, 'alice online');
  });

  after(async () => {
    for (const c of [alice, bob, dave]) await c?.stop();
    await ts?.stop();
  });

  const vcard = async (c: PepClient, to: string) => c.iq('get', to, xml('vCard', { xmlns: 'vcard-temp' }));

  it('shows a PEP avatar as vCard PHOTO to contacts, not to strangers, and as the presence hash', async () => {
    const id = sha1(png);
    await alice.iq('set', undefined, publish(DATA, id, xml('data', { xmlns: DATA }, png.toString('base64'))));
    const r = await alice.iq(
      'set',
      undefined,
      publish(METADATA, id, xml('metadata', { xmlns: METADATA }, xml('info', { id, bytes: String(png.length), type: 'image/png' }))),
    );
    assert.equal(r.attrs.type, 'result');
    const event = await bob.waitFor((s) => !!eventItems(s, METADATA), 'metadata event');
    assert.equal(eventItems(event, METADATA)!.getChild('item').attrs.id, id);

    const card = (await vcard(bob, 'alice@localhost')).getChild('vCard', 'vcard-temp');
    assert.equal(card.getChild('PHOTO').getChildText('TYPE'), 'image/png');
    assert.ok(Buffer.from(card.getChild('PHOTO').getChildText('BINVAL'), 'base64').equals(png));
    // The data node has PEP's default access model (presence): a stranger sees no picture.
    assert.equal(errorOf(await vcard(dave, 'alice@localhost')).condition, 'item-not-found');

    // Presence gets the hash; an explicit empty photo ("no avatar") is left alone.
    await alice.send(xml('presence', {}, xml('status', {}, 'with hash')));
    const p = await bob.waitFor((s) => s.is('presence') && s.getChildText('status') === 'with hash', 'presence with hash');
    assert.equal(p.getChild('x', UPDATE)?.getChildText('photo'), id);
    await alice.send(xml('presence', {}, xml('status', {}, 'no avatar'), xml('x', { xmlns: UPDATE }, xml('photo'))));
    const q = await bob.waitFor((s) => s.is('presence') && s.getChildText('status') === 'no avatar', 'presence without');
    assert.equal(q.getChild('x', UPDATE)?.getChildText('photo'), '');
  });

  it('publishes a legacy client\'s vCard PHOTO as the PEP avatar', async () => {
    const jpeg = await sharp({ create: { width: 20, height: 10, channels: 3, background: { r: 200, g: 0, b: 0 } } }).jpeg().toBuffer();
    const id = sha1(jpeg);
    const told = bob.waitFor((s) => eventItems(s, METADATA)?.getChild('item')?.attrs.id === id, 'new metadata event');
    const set = await alice.iq(
      'set',
      undefined,
      xml('vCard', { xmlns: 'vcard-temp' }, xml('FN', {}, 'Alice'), xml('PHOTO', {}, xml('TYPE', {}, 'image/jpeg'), xml('BINVAL', {}, jpeg.toString('base64')))),
    );
    assert.equal(set.attrs.type, 'result');
    const info = eventItems(await told, METADATA)!.getChild('item').getChild('metadata', METADATA).getChild('info');
    assert.deepEqual([info.attrs.type, info.attrs.bytes], ['image/jpeg', String(jpeg.length)]);
    const data = await bob.iq('get', 'alice@localhost', xml('pubsub', { xmlns: 'http://jabber.org/protocol/pubsub' }, xml('items', { node: DATA }, xml('item', { id }))));
    const b64 = data.getChild('pubsub').getChild('items').getChild('item').getChild('data', DATA).getText();
    assert.ok(Buffer.from(b64, 'base64').equals(jpeg));
    // The vCard reads back as written (FN kept, PHOTO the same picture).
    const card = (await vcard(bob, 'alice@localhost')).getChild('vCard', 'vcard-temp');
    assert.equal(card.getChildText('FN'), 'Alice');
    assert.ok(Buffer.from(card.getChild('PHOTO').getChildText('BINVAL'), 'base64').equals(jpeg));
    const feats = (await alice.iq('get', 'alice@localhost', xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })))
      .getChild('query')
      .getChildren('feature')
      .map((f: Element) => f.attrs.var);
    assert.ok(feats.includes('urn:xmpp:pep-vcard-conversion:0'));

    // The same client writes its vCard without the picture: the avatar that came from a vCard goes.
    const cleared = bob.waitFor((s) => {
      const item = eventItems(s, METADATA)?.getChild('item');
      return !!item?.getChild('metadata', METADATA) && !item.getChild('metadata', METADATA).getChild('info');
    }, 'empty metadata event');
    await alice.iq('set', undefined, xml('vCard', { xmlns: 'vcard-temp' }, xml('FN', {}, 'Alice')));
    await cleared;
    const plain = (await vcard(bob, 'alice@localhost')).getChild('vCard', 'vcard-temp');
    assert.equal(plain.getChild('PHOTO'), undefined);
  });
});
