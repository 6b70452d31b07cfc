// XEP-0054 vcard-temp with two independent clients: slixmpp stores a vCard
// with a 40 KB PHOTO, @xmpp/client reads it back byte for byte, before and
// after a restart; limits, permissions and missing users are refused.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import { startServer, type TestServer } from '../helpers/server.ts';
import { SlixClient } from '../helpers/slixmpp.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

const PHOTO = randomBytes(40 * 1024);
// Wrapped at 76 columns as clients do: the line breaks must survive too.
const BINVAL = PHOTO.toString('base64').replace(/.{76}/g, '$&\n');

function vcardXml(binval: string, extra = ''): string {
  return `<vCard xmlns='vcard-temp'><FN>Alice &amp; Co</FN>${extra}<PHOTO><TYPE>image/jpeg</TYPE><BINVAL>${binval}</BINVAL></PHOTO></vCard>`;
}

function getVcard(c: TestClient, to?: string): Promise<Element> {
  return c.xmpp.iqCaller.request(xml('iq', { type: 'get', to }, xml('vCard', { xmlns: 'vcard-temp' })));
}

async function condition(p: Promise<unknown>): Promise<string> {
  const err = (await p.then(
    () => assert.fail('expected an error'),
    (e: unknown) => e,
  )) as { condition?: string; type?: string };
  return `${err.type}/${err.condition}`;
}

describe('vcard-temp', () => {
  let ts: TestServer;
  let alice: SlixClient;
  let bob: TestClient;
  let setId = 0;

  /** Sends a vCard set from slixmpp; resolves with the reply. */
  function aliceSets(vcard: string) {
    const id = `set${++setId}`;
    alice.send(`<iq type='set' id='${id}'>${vcard}</iq>`);
    return alice.waitStanza((s) => s.is('iq') && s.attrs.id === id, `reply to ${id}`);
  }

  /** Bob (@xmpp/client) replaces his own vCard. */
  function bobSets(binval: string, note = '') {
    const card = xml(
      'vCard',
      { xmlns: 'vcard-temp' },
      xml('NOTE', {}, note),
      xml('PHOTO', {}, xml('TYPE', {}, 'image/png'), xml('BINVAL', {}, binval)),
    );
    return bob.xmpp.iqCaller.request(xml('iq', { type: 'set' }, card));
  }

  before(async () => {
    ts = await startServer({ limits: { vcardMaxSize: 100 * 1024, vcardPhotoMaxSize: 50 * 1024 } });
    await ts.addUser('alice', 'pw');
    await ts.addUser('bob', 'pw');
    await ts.addUser('carol', 'pw');
    alice = new SlixClient({ jid: 'alice@localhost/slix', password: 'pw', port: ts.port });
    await alice.started();
    bob = await connect({ port: ts.port, username: 'bob', password: 'pw' });
  });
  after(async () => {
    await alice?.stop();
    await bob?.stop();
    await ts.stop();
  });

  it('stores a 40 KB PHOTO from slixmpp and gives it to another user byte for byte', async () => {
    const reply = await aliceSets(vcardXml(BINVAL));
    assert.equal(reply.attrs.type, 'result');

    const res = await getVcard(bob, 'alice@localhost');
    assert.equal(res.attrs.from, 'alice@localhost');
    const card = res.getChild('vCard', 'vcard-temp')!;
    assert.equal(card.getChildText('FN'), 'Alice & Co');
    const binval = card.getChild('PHOTO')!.getChildText('BINVAL')!;
    assert.equal(binval, BINVAL);
    assert.ok(Buffer.from(binval, 'base64').equals(PHOTO));
  });

  it('lets owners read their own vCard without a to (both clients)', async () => {
    await bobSets(BINVAL);
    assert.equal((await getVcard(bob)).getChild('vCard')!.getChild('PHOTO')!.getChildText('BINVAL'), BINVAL);
    alice.send(`<iq type='get' id='own'><vCard xmlns='vcard-temp'/></iq>`);
    const reply = await alice.waitStanza((s) => s.is('iq') && s.attrs.id === 'own', 'own vCard');
    assert.equal(reply.attrs.type, 'result');
    assert.equal(reply.getChild('vCard')!.getChild('PHOTO')!.getChildText('BINVAL'), BINVAL);
  });

  it('refuses a PHOTO over limits.vcardPhotoMaxSize and keeps the stored vCard', async () => {
    const big = randomBytes(60 * 1024).toString('base64');
    assert.equal(await condition(bobSets(big)), 'modify/policy-violation');
    const card = (await getVcard(bob)).getChild('vCard')!;
    assert.equal(card.getChild('PHOTO')!.getChildText('BINVAL'), BINVAL);
  });

  it('refuses a vCard over limits.vcardMaxSize', async () => {
    assert.equal(await condition(bobSets(BINVAL, 'x'.repeat(70 * 1024))), 'modify/policy-violation');
  });

  it("forbids writing another user's vCard", async () => {
    const set = xml(
      'iq',
      { type: 'set', to: 'alice@localhost' },
      xml('vCard', { xmlns: 'vcard-temp' }, xml('FN', {}, 'x')),
    );
    assert.equal(await condition(bob.xmpp.iqCaller.request(set)), 'auth/forbidden');
  });

  it('answers item-not-found without a vCard, service-unavailable without an account', async () => {
    assert.equal(await condition(getVcard(bob, 'carol@localhost')), 'cancel/item-not-found');
    assert.equal(await condition(getVcard(bob, 'nobody@localhost')), 'cancel/service-unavailable');
  });

  it('passes presence carrying vcard-temp:x:update untouched', async () => {
    const hash = 'a'.repeat(40);
    await bob.send(
      xml('presence', { to: alice.jid }, xml('x', { xmlns: 'vcard-temp:x:update' }, xml('photo', {}, hash))),
    );
    const p = await alice.waitStanza(
      (s) => s.is('presence') && s.attrs.from === bob.jid,
      'presence from bob',
    );
    assert.equal(p.getChild('x', 'vcard-temp:x:update')?.getChildText('photo'), hash);
  });

  it('is still there after a restart', async () => {
    await alice.stop();
    await bob.stop();
    ts = await ts.restart();
    bob = await connect({ port: ts.port, username: 'bob', password: 'pw' });
    const card = (await getVcard(bob, 'alice@localhost')).getChild('vCard')!;
    assert.ok(Buffer.from(card.getChild('PHOTO')!.getChildText('BINVAL')!, 'base64').equals(PHOTO));
  });
});
