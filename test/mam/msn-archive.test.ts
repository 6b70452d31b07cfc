// Conversations with MSN contacts through the in-process transport are in
// the local user's archive, with the same stanza ids on the live messages,
// their carbons and the archive; read back by slixmpp's MAM iterator. The
// MSN side is the simulator with an MsnSession buddy.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import type { MsnSession } from '../../src/msnp/index.ts';
import { parse } from '../../src/xml/element.ts';
import { type MsnWorld, nextEvent, registeredUser, startMsnWorld } from '../gateway/msn-harness.ts';
import { SlixClient } from '../helpers/slixmpp.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

const MAM = 'urn:xmpp:mam:2';
const SID = 'urn:xmpp:sid:0';
const CARBONS = 'urn:xmpp:carbons:2';
const BOB = 'bob%hotmail.com@msn.localhost';

describe('archive of MSN conversations', () => {
  let world: MsnWorld;
  let juliet: TestClient;
  let phone: TestClient;
  let bob: MsnSession;

  before(async () => {
    world = await startMsnWorld((sim) => {
      sim.addAccount('alice@hotmail.com', 'alicepw');
      sim.addAccount('bob@hotmail.com', 'bobpw', { nickname: 'Bob' });
      sim.makeFriends('alice@hotmail.com', 'bob@hotmail.com');
    });
    bob = await world.buddy('bob@hotmail.com', 'bobpw');
    juliet = await registeredUser(world, 'juliet', 'alice@hotmail.com', 'alicepw');
    // A second resource with carbons, not a delivery target.
    phone = await connect({ port: world.ts.port, username: 'juliet', password: 'pw', resource: 'phone' });
    await phone.send(xml('iq', { type: 'set', id: 'carbons' }, xml('enable', { xmlns: CARBONS })));
    await phone.waitFor((s) => s.attrs.id === 'carbons', 'carbons enabled');
    await phone.send(xml('presence', {}, xml('priority', {}, '-1')));
  });
  after(async () => {
    await phone?.stop();
    await juliet?.stop();
    await world?.stop();
  });

  it('archives both directions for the local user, with one id per message', async () => {
    const atBob = nextEvent(bob, 'message', (m) => m.from === 'alice@hotmail.com');
    await juliet.send(xml('message', { to: BOB, type: 'chat', id: 'out1' }, xml('body', {}, 'Hello Bob')));
    assert.equal((await atBob).text, 'Hello Bob');
    const sentCarbon = await phone.waitFor((s) => s.getChild('sent', CARBONS) !== undefined, 'sent carbon');
    const sentId = sentCarbon.getChild('sent', CARBONS).getChild('forwarded').getChild('message').getChild('stanza-id', SID);
    assert.equal(sentId?.attrs.by, 'juliet@localhost');

    await bob.sendMessage('alice@hotmail.com', 'Hi Juliet');
    const live = await juliet.waitFor((s) => s.is('message') && s.attrs.from === BOB && s.getChildText('body') === 'Hi Juliet', 'reply');
    const liveId = live.getChild('stanza-id', SID) as Element | undefined;
    assert.equal(liveId?.attrs.by, 'juliet@localhost', `live message stamped: ${live.toString()}`);
    const receivedCarbon = await phone.waitFor((s) => s.getChild('received', CARBONS) !== undefined, 'received carbon');
    const carbonId = receivedCarbon.getChild('received', CARBONS).getChild('forwarded').getChild('message').getChild('stanza-id', SID);
    assert.equal(carbonId?.attrs.id, liveId!.attrs.id, 'carbon and live message agree');

    const slix = new SlixClient({ jid: 'juliet@localhost/slix', password: 'pw', port: world.ts.port, plugins: ['xep_0313'] });
    try {
      await slix.started();
      const paged = await slix.op('mam_pages', { max: 1, with: BOB });
      assert.ok(paged.ok, `slixmpp MAM failed: ${paged.condition} ${paged.text}`);
      const pages = paged.value!.pages as Array<{ results: string[] }>;
      assert.equal(pages.length, 2, 'one message per page');
      const results = pages.flatMap((p) => p.results.map((r) => parse(r).getChild('result', MAM) as unknown as Element));
      const forwarded = results.map((r) => r.getChild('forwarded').getChild('message'));
      assert.deepEqual(
        forwarded.map((m) => m.getChildText('body')),
        ['Hello Bob', 'Hi Juliet'],
      );
      assert.equal(forwarded[0].attrs.to, BOB);
      assert.equal(forwarded[1].attrs.from, BOB);
      assert.deepEqual(
        results.map((r) => r.attrs.id),
        [sentId.attrs.id, liveId!.attrs.id],
        'archive ids are the stanza ids',
      );
    } finally {
      await slix.stop();
    }
  });
});
