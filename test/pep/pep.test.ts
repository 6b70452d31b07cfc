// PEP (XEP-0163) with @xmpp/client sessions that advertise caps: discovery,
// notifications filtered by +notify, the last item on presence, the owner
// use cases, the limits, and account deletion. The slixmpp scenarios the
// issue names live in slixmpp.test.ts.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import { capsHash } from '../../src/modules/caps.ts';
import { RosterStore } from '../../src/storage/roster.ts';
import { parse } from '../../src/xml/element.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import {
  errorOf,
  EVENT,
  eventItems,
  form,
  items,
  OWNER,
  type PepClient,
  PUBSUB,
  pepClient,
  publish,
} from './pep-helpers.ts';

const TUNE = 'http://jabber.org/protocol/tune';
const tune = (title: string) => xml('tune', { xmlns: TUNE }, xml('title', {}, title));

describe('PEP', { timeout: 120_000 }, () => {
  let ts: TestServer;
  let alice: PepClient;
  let alice2: PepClient;
  let bob: PepClient;
  let carol: PepClient;

  before(async () => {
    ts = await startServer({ limits: { pepMaxNodes: 4, pepMaxItems: 5, pepItemMaxSize: 2000 } });
    for (const u of ['alice', 'bob', 'carol', 'dave']) await ts.addUser(u, `${u}-pw`);
    const rosters = ts.server.store(RosterStore);
    for (const [a, b] of [
      ['alice', 'bob'],
      ['alice', 'carol'],
    ]) {
      await rosters.setItem(`${a}@localhost`, { jid: `${b}@localhost`, subscription: 'both', groups: ['Friends'] });
      await rosters.setItem(`${b}@localhost`, { jid: `${a}@localhost`, subscription: 'both', groups: [] });
    }
    alice = await pepClient(ts.port, 'alice', 'one');
    alice2 = await pepClient(ts.port, 'alice', 'two');
    bob = await pepClient(ts.port, 'bob', 'desk');
    carol = await pepClient(ts.port, 'carol', 'desk');
    await alice.available([`${TUNE}+notify`]);
    await alice2.available([`${TUNE}+notify`]);
    await bob.available([`${TUNE}+notify`]);
    await carol.available([]);
    // Everyone has seen everyone's presence (and the server their caps) before publishing.
    await alice.waitFor((s) => s.is('presence') && s.attrs.from === carol.jid, 'carol online');
    await alice.waitFor((s) => s.is('presence') && s.attrs.from === bob.jid, 'bob online');
    await alice.waitFor((s) => s.is('presence') && s.attrs.from === alice2.jid, 'second resource online');
  });

  after(async () => {
    for (const c of [alice, alice2, bob, carol]) await c?.stop();
    await ts?.stop();
  });

  it('shows pubsub/pep and the pubsub features on the account', async () => {
    const r = await alice.iq('get', 'alice@localhost', xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' }));
    const q = r.getChild('query');
    const identities = q.getChildren('identity').map((i: Element) => `${i.attrs.category}/${i.attrs.type}`);
    assert.deepEqual(identities, ['account/registered', 'pubsub/pep']);
    const features = q.getChildren('feature').map((f: Element) => f.attrs.var);
    for (const f of ['publish', 'publish-options', 'auto-create', 'filtered-notifications', 'access-whitelist', 'config-node-max']) {
      assert.ok(features.includes(`${PUBSUB}#${f}`), f);
    }
  });

  it('notifies the resources that want the node, the owner\'s included, and no one else', async () => {
    const r = await alice.iq('set', undefined, publish(TUNE, 'song1', tune('First')));
    assert.equal(r.attrs.type, 'result');
    assert.equal(r.getChild('pubsub', PUBSUB).getChild('publish').getChild('item').attrs.id, 'song1');
    for (const c of [bob, alice, alice2]) {
      const m = await c.waitFor((s) => !!eventItems(s, TUNE), `tune event at ${c.jid}`);
      assert.equal(m.attrs.from, 'alice@localhost');
      assert.equal(m.attrs.to, c.jid);
      assert.equal(m.attrs.type, 'headline');
      assert.equal(eventItems(m, TUNE)!.getChild('item').getChild('tune', TUNE).getChildText('title'), 'First');
    }
    // Carol is a contact, but her caps do not ask for tunes; a ping round trip
    // after the publish shows nothing was queued for her.
    await carol.iq('get', 'localhost', xml('ping', { xmlns: 'urn:xmpp:ping' }));
    assert.equal(carol.received.filter((s) => eventItems(s, TUNE)).length, 0);
  });

  it('sends the last item to a contact\'s resource that comes online wanting it', async () => {
    const bob2 = await pepClient(ts.port, 'bob', 'phone');
    try {
      await bob2.available([`${TUNE}+notify`]);
      const m = await bob2.waitFor((s) => !!eventItems(s, TUNE), 'last tune');
      assert.equal(eventItems(m, TUNE)!.getChild('item').attrs.id, 'song1');
      assert.ok(m.getChild('delay', 'urn:xmpp:delay'), 'marked as delayed');
    } finally {
      await bob2.stop();
    }
  });

  it('refuses a stranger under the presence model and serves one under open', async () => {
    const dave = await pepClient(ts.port, 'dave', 'x');
    try {
      const denied = await dave.iq('get', 'alice@localhost', items(TUNE));
      assert.deepEqual(errorOf(denied).condition, 'not-authorized');
      assert.equal(errorOf(denied).pubsub, 'presence-subscription-required');
      const ok = await bob.iq('get', 'alice@localhost', items(TUNE));
      assert.equal(ok.getChild('pubsub', PUBSUB).getChild('items').getChild('item').attrs.id, 'song1');
      // Publishing with a different access model fails its precondition...
      const clash = await alice.iq('set', undefined, publish(TUNE, 'song2', tune('Second'), { 'pubsub#access_model': 'open' }));
      assert.deepEqual(errorOf(clash), {
        condition: 'conflict',
        pubsub: 'precondition-not-met',
        text: "pubsub#access_model is 'presence', not 'open'",
      });
      // ...until the owner reconfigures the node, as clients do.
      const conf = await alice.iq('get', undefined, xml('pubsub', { xmlns: OWNER }, xml('configure', { node: TUNE })));
      const fields = conf.getChild('pubsub', OWNER).getChild('configure').getChild('x', 'jabber:x:data').getChildren('field');
      assert.equal(fields.find((f: Element) => f.attrs.var === 'pubsub#access_model').getChildText('value'), 'presence');
      const set = await alice.iq(
        'set',
        undefined,
        xml('pubsub', { xmlns: OWNER }, xml('configure', { node: TUNE }, form('http://jabber.org/protocol/pubsub#node_config', { 'pubsub#access_model': 'open' }))),
      );
      assert.equal(set.attrs.type, 'result');
      const again = await alice.iq('set', undefined, publish(TUNE, 'song2', tune('Second'), { 'pubsub#access_model': 'open' }));
      assert.equal(again.attrs.type, 'result');
      const open = await dave.iq('get', 'alice@localhost', items(TUNE));
      assert.equal(open.getChild('pubsub', PUBSUB).getChild('items').getChild('item').attrs.id, 'song2');
      // Nobody but the owner may publish or configure.
      assert.equal(errorOf(await dave.iq('set', 'alice@localhost', publish(TUNE, 'x', tune('no')))).condition, 'forbidden');
      assert.equal(
        errorOf(await dave.iq('get', 'alice@localhost', xml('pubsub', { xmlns: OWNER }, xml('configure', { node: TUNE })))).condition,
        'forbidden',
      );
    } finally {
      await dave.stop();
    }
  });

  it('keeps max_items, retracts with notification, purges and deletes', async () => {
    const NODE = 'urn:example:list';
    for (let i = 1; i <= 7; i++) {
      const r = await alice.iq('set', undefined, publish(NODE, `i${i}`, xml('n', { xmlns: 'urn:example' }, String(i)), { 'pubsub#max_items': 'max' }));
      assert.equal(r.attrs.type, 'result', r.toString());
    }
    const all = await alice.iq('get', undefined, items(NODE));
    // The server keeps 5 per node here: 'max' means 5, the oldest went.
    assert.deepEqual(
      all.getChild('pubsub', PUBSUB).getChild('items').getChildren('item').map((i: Element) => i.attrs.id),
      ['i3', 'i4', 'i5', 'i6', 'i7'],
    );
    const newest = await alice.iq('get', undefined, items(NODE, { max_items: '2' }));
    assert.deepEqual(newest.getChild('pubsub', PUBSUB).getChild('items').getChildren('item').map((i: Element) => i.attrs.id), ['i6', 'i7']);
    const tooMany = await alice.iq('set', undefined, publish(NODE, 'i8', xml('n', { xmlns: 'urn:example' }), { 'pubsub#max_items': '50' }));
    assert.equal(errorOf(tooMany).condition, 'not-acceptable');
    assert.match(errorOf(tooMany).text ?? '', /limit of 5 items per node/);

    const retracted = alice2.waitFor((s) => !!eventItems(s, TUNE)?.getChild('retract'), 'retract event');
    const r = await alice.iq('set', undefined, xml('pubsub', { xmlns: PUBSUB }, xml('retract', { node: TUNE, notify: 'true' }, xml('item', { id: 'song2' }))));
    assert.equal(r.attrs.type, 'result');
    assert.equal(eventItems(await retracted, TUNE)!.getChild('retract').attrs.id, 'song2');
    assert.equal(
      errorOf(await alice.iq('set', undefined, xml('pubsub', { xmlns: PUBSUB }, xml('retract', { node: TUNE }, xml('item', { id: 'song2' }))))).condition,
      'item-not-found',
    );

    await alice.iq('set', undefined, xml('pubsub', { xmlns: OWNER }, xml('purge', { node: NODE })));
    const empty = await alice.iq('get', undefined, items(NODE));
    assert.equal(empty.getChild('pubsub', PUBSUB).getChild('items').getChildren('item').length, 0);
    const deleted = alice2.waitFor((s) => s.getChild('event', EVENT)?.getChild('delete')?.attrs.node === TUNE, 'delete event');
    await alice.iq('set', undefined, xml('pubsub', { xmlns: OWNER }, xml('delete', { node: TUNE })));
    await deleted;
    assert.equal(errorOf(await alice.iq('get', undefined, items(TUNE))).condition, 'item-not-found');
  });

  it('refuses items over the size limit and nodes over the count limit', async () => {
    const big = await alice.iq('set', undefined, publish('urn:example:big', 'b', xml('blob', { xmlns: 'urn:example' }, 'x'.repeat(3000))));
    assert.deepEqual(
      [errorOf(big).condition, errorOf(big).pubsub],
      ['not-acceptable', 'payload-too-big'],
    );
    // urn:example:list exists; three more fill the limit of 4.
    for (const n of ['a', 'b', 'c']) {
      const r = await alice.iq('set', undefined, publish(`urn:example:${n}`, '1', xml('n', { xmlns: 'urn:example' })));
      assert.equal(r.attrs.type, 'result', r.toString());
    }
    const over = await alice.iq('set', undefined, publish('urn:example:d', '1', xml('n', { xmlns: 'urn:example' })));
    assert.deepEqual([errorOf(over).condition, errorOf(over).pubsub], ['not-allowed', 'max-nodes-exceeded']);
    const listed = await alice.iq('get', 'alice@localhost', xml('query', { xmlns: 'http://jabber.org/protocol/disco#items' }));
    assert.equal(listed.getChild('query').getChildren('item').length, 4);
  });

  it('removes every node with the account', async () => {
    const eve = await (async () => {
      await ts.addUser('eve', 'eve-pw');
      return pepClient(ts.port, 'eve', 'x');
    })();
    await eve.iq('set', undefined, publish('urn:example:mine', '1', xml('n', { xmlns: 'urn:example' })));
    const removed = await eve.iq('set', undefined, xml('query', { xmlns: 'jabber:iq:register' }, xml('remove')));
    assert.equal(removed.attrs.type, 'result');
    await eve.stop();
    assert.deepEqual(await ts.server.storage.pubsub('pep').nodes('eve@localhost'), []);
  });

  it('verifies the XEP-0115 complex example hash, forms included', () => {
    const query = parse(`<query xmlns='http://jabber.org/protocol/disco#info'>
      <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
      <identity xml:lang='el' category='client' name='\u03a8 0.11' type='pc'/>
      <feature var='http://jabber.org/protocol/caps'/>
      <feature var='http://jabber.org/protocol/disco#info'/>
      <feature var='http://jabber.org/protocol/disco#items'/>
      <feature var='http://jabber.org/protocol/muc'/>
      <x xmlns='jabber:x:data' type='result'>
        <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>
        <field var='ip_version' type='text-multi'><value>ipv4</value><value>ipv6</value></field>
        <field var='os'><value>Mac</value></field>
        <field var='os_version'><value>10.5.1</value></field>
        <field var='software'><value>Psi</value></field>
        <field var='software_version'><value>0.11</value></field>
      </x></query>`);
    assert.equal(capsHash(query, 'sha1'), 'q07IKJEyjvHSyhy//CH0CxmKi8w=');
    // A duplicate feature makes the answer ill-formed: it is never cached.
    query.cnode(parse(`<feature var='http://jabber.org/protocol/muc'/>`));
    assert.equal(capsHash(query, 'sha1'), null);
  });
});
