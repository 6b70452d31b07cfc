// The PEP scenarios with Debian's python3-slixmpp, using its own plugins
// (XEP-0030/0115 caps, XEP-0060, XEP-0163, XEP-0084, XEP-0048/0049):
// +notify filtering of an avatar, an open device list a stranger can read
// and a presence-access node a stranger cannot, whitelist bookmarks only
// the owner's other resource can read, precondition-not-met, and private
// XML round trips (bookmarks among them, converted to and from XEP-0402).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CapsCache, type InterestEvent } from '../../src/modules/caps.ts';
import { RosterStore } from '../../src/storage/roster.ts';
import { type Element, parse } from '../../src/xml/element.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { SlixCallError, SlixClient } from '../helpers/slixmpp.ts';

const PUBSUB = 'http://jabber.org/protocol/pubsub';
const EVENT = 'http://jabber.org/protocol/pubsub#event';
const ERRORS = 'http://jabber.org/protocol/pubsub#errors';
const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
const METADATA = 'urn:xmpp:avatar:metadata';
const DEVICES = 'eu.siacs.conversations.axolotl.devicelist';
const BOOKMARKS = 'urn:xmpp:bookmarks:1';
const PUBLISH_OPTIONS = 'http://jabber.org/protocol/pubsub#publish-options';
// A 1×1 PNG.
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg==',
  'base64',
);

describe('PEP with slixmpp', { timeout: 180_000 }, () => {
  let ts: TestServer;
  const clients: SlixClient[] = [];
  let alice: SlixClient;
  let alice2: SlixClient;
  let bob: SlixClient;
  let carol: SlixClient;
  let dave: SlixClient;
  const interest: InterestEvent[] = [];
  const interestWaiters: Array<() => void> = [];

  async function start(jid: string, plugins: string[]): Promise<SlixClient> {
    const c = new SlixClient({ jid, password: 'pw', port: ts.port, plugins });
    clients.push(c);
    await c.started();
    return c;
  }

  /** Resolves once the server knows what `entity` (present to `user`) supports. */
  function knows(user: string, entity: string): Promise<void> {
    const has = () => interest.some((e) => e.user === user && e.entity.toString() === entity);
    return new Promise((resolve, reject) => {
      if (has()) return resolve();
      const timer = setTimeout(() => reject(new Error(`caps of ${entity} never known to ${user}`)), 20_000);
      interestWaiters.push(() => {
        if (has()) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  }

  function errorOf(err: unknown): { condition?: string; pubsub?: string } {
    assert.ok(err instanceof SlixCallError, String(err));
    const error = err.reply?.getChild('error');
    const kids = error?.getChildElements() ?? [];
    return {
      condition: kids.find((k) => k.getNS() === STANZAS && k.name !== 'text')?.name,
      pubsub: kids.find((k) => k.getNS() === ERRORS)?.name,
    };
  }

  const form = (fields: Record<string, string>) => ({ $form: { FORM_TYPE: PUBLISH_OPTIONS, ...fields } });
  const xml = (s: string) => ({ $xml: s });
  const aliceJid = { $jid: 'alice@localhost' };

  before(async () => {
    ts = await startServer();
    for (const u of ['alice', 'bob', 'carol', 'dave']) await ts.addUser(u, 'pw');
    const rosters = ts.server.store(RosterStore);
    for (const b of ['bob', 'carol']) {
      await rosters.setItem('alice@localhost', { jid: `${b}@localhost`, subscription: 'both', groups: [] });
      await rosters.setItem(`${b}@localhost`, { jid: 'alice@localhost', subscription: 'both', groups: [] });
    }
    ts.server.store(CapsCache).onInterest((e) => {
      interest.push(e);
      for (const w of [...interestWaiters]) w();
    });
    const caps = ['xep_0030', 'xep_0004', 'xep_0115', 'xep_0060', 'xep_0163'];
    alice = await start('alice@localhost/one', [...caps, 'xep_0084', 'xep_0049', 'xep_0048']);
    alice2 = await start('alice@localhost/two', ['xep_0030', 'xep_0004', 'xep_0060', 'xep_0049', 'xep_0048']);
    // Bob's client wants avatar notifications (xep_0084 adds urn:xmpp:avatar:metadata+notify to its caps)...
    bob = await start('bob@localhost/slix', [...caps, 'xep_0084']);
    // ...Carol's advertises caps too, without that interest.
    carol = await start('carol@localhost/slix', caps);
    dave = await start('dave@localhost/slix', ['xep_0030', 'xep_0004', 'xep_0060']);
    for (const c of [alice, alice2, bob, carol, dave]) await c.call(null, 'send_presence');
    await knows('alice@localhost', bob.jid);
    await knows('alice@localhost', carol.jid);
  });

  after(async () => {
    for (const c of clients) await c.stop();
    await ts?.stop();
  });

  it('sends an avatar to the contact that advertises +notify, not to the one that does not', async () => {
    const id = await alice.call('xep_0084', 'publish_avatar', [{ $bytes: PNG.toString('base64') }]);
    assert.match(id, /type="result"/);
    const sha1 = (await import('node:crypto')).createHash('sha1').update(PNG).digest('hex');
    await alice.call('xep_0084', 'publish_avatar_metadata', [], {
      // slixmpp writes these attributes as given: strings.
      items: [{ id: sha1, type: 'image/png', bytes: String(PNG.length), width: '1', height: '1' }],
    });
    const event = await bob.waitStanza(
      (s) => s.getChild('event', EVENT)?.getChild('items')?.attrs.node === METADATA,
      'avatar metadata event at bob',
    );
    assert.equal(event.attrs.from, 'alice@localhost');
    const info = event.getChild('event', EVENT)!.getChild('items')!.getChild('item')!.getChild('metadata', METADATA)!.getChild('info')!;
    assert.equal(info.attrs.id, sha1);
    // Carol asks the server something after the publish: had a notification
    // been routed to her, it would have reached her first.
    await carol.call('xep_0030', 'get_info', [{ $jid: 'localhost' }]);
    const carolEvents = carol.events.filter((e) => e.event === 'stanza' && parse(e.xml!).getChild('event', EVENT));
    assert.deepEqual(carolEvents, []);
  });

  it('lets a stranger read an open device list but not a presence-access node', async () => {
    await alice.call('xep_0060', 'publish', [null, DEVICES], {
      id: 'current',
      payload: xml(`<list xmlns='eu.siacs.conversations.axolotl'><device id='31415'/></list>`),
      options: form({ 'pubsub#access_model': 'open' }),
    });
    const got = parse(await dave.call('xep_0060', 'get_items', [aliceJid, DEVICES]));
    const list = got.getChild('pubsub', PUBSUB)!.getChild('items')!.getChild('item')!.getChild('list', 'eu.siacs.conversations.axolotl')!;
    assert.equal(list.getChild('device')!.attrs.id, '31415');
    // The avatar metadata node has PEP's default access model, presence.
    const refused = await dave.call('xep_0060', 'get_items', [aliceJid, METADATA]).then(
      () => assert.fail('a stranger read a presence-access node'),
      (err) => errorOf(err),
    );
    assert.deepEqual(refused, { condition: 'not-authorized', pubsub: 'presence-subscription-required' });
    // A contact may read it.
    const forBob = parse(await bob.call('xep_0060', 'get_items', [aliceJid, METADATA]));
    assert.ok(forBob.getChild('pubsub', PUBSUB)!.getChild('items')!.getChild('item'));
  });

  it('keeps whitelist bookmarks for the owner\'s other resource only, and holds its preconditions', async () => {
    const conference = `<conference xmlns='${BOOKMARKS}' name='The Orchard' autojoin='true'><nick>juliet</nick></conference>`;
    await alice.call('xep_0060', 'publish', [null, BOOKMARKS], {
      id: 'orchard@conference.localhost',
      payload: xml(conference),
      options: form({
        'pubsub#access_model': 'whitelist',
        'pubsub#persist_items': 'true',
        'pubsub#max_items': 'max',
        'pubsub#send_last_published_item': 'never',
      }),
    });
    const mine = parse(await alice2.call('xep_0060', 'get_items', [aliceJid, BOOKMARKS]));
    const item = mine.getChild('pubsub', PUBSUB)!.getChild('items')!.getChild('item')!;
    assert.equal(item.attrs.id, 'orchard@conference.localhost');
    assert.equal(item.getChild('conference', BOOKMARKS)!.getChildText('nick'), 'juliet');
    const refused = await bob.call('xep_0060', 'get_items', [aliceJid, BOOKMARKS]).then(
      () => assert.fail('a contact read whitelist bookmarks'),
      (err) => errorOf(err),
    );
    assert.deepEqual(refused, { condition: 'not-allowed', pubsub: 'closed-node' });

    const clash = await alice
      .call('xep_0060', 'publish', [null, BOOKMARKS], {
        id: 'other@conference.localhost',
        payload: xml(conference),
        options: form({ 'pubsub#access_model': 'open' }),
      })
      .then(
        () => assert.fail('publish-options differing from the node were accepted'),
        (err) => errorOf(err),
      );
    assert.deepEqual(clash, { condition: 'conflict', pubsub: 'precondition-not-met' });
  });

  it('round-trips private XML, bookmarks included (converted from and to XEP-0402)', async () => {
    // Any namespace: stored and read back byte for byte.
    const prefs = `<prefs xmlns='urn:example:prefs'><theme>dark</theme><sound on='1'/></prefs>`;
    await alice2.call('xep_0049', 'store', [xml(prefs)]);
    alice2.send(`<iq type='get' id='priv1'><query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'/></query></iq>`);
    const back = await alice2.waitStanza((s) => s.attrs.id === 'priv1', 'private XML result');
    const stored = back.getChild('query', 'jabber:iq:private')!.getChild('prefs', 'urn:example:prefs')!;
    assert.equal(stored.getChild('theme')!.getText(), 'dark');
    assert.equal(stored.getChild('sound')!.attrs.on, '1');

    // XEP-0048 bookmarks in private XML show the XEP-0402 bookmark published above...
    const legacy = parse(await alice2.call('xep_0048', 'get_bookmarks', [], { method: 'xep_0049' }));
    const storage = legacy.getChild('query', 'jabber:iq:private')!.getChild('storage', 'storage:bookmarks')!;
    const confs = storage.getChildren('conference').map((c: Element) => [c.attrs.jid, c.attrs.name, c.attrs.autojoin, c.getChildText('nick')]);
    assert.deepEqual(confs, [['orchard@conference.localhost', 'The Orchard', 'true', 'juliet']]);

    // ...and a legacy client's write replaces the XEP-0402 items (the dropped room retracted).
    await alice2.call('xep_0049', 'store', [
      xml(`<storage xmlns='storage:bookmarks'><conference jid='garden@conference.localhost' name='Garden' autojoin='false'><nick>jul</nick></conference></storage>`),
    ]);
    const items = parse(await alice2.call('xep_0060', 'get_items', [aliceJid, BOOKMARKS]))
      .getChild('pubsub', PUBSUB)!
      .getChild('items')!
      .getChildren('item');
    assert.deepEqual(
      items.map((i: Element) => [i.attrs.id, i.getChild('conference', BOOKMARKS)!.attrs.name]),
      [['garden@conference.localhost', 'Garden']],
    );
    // The XEP-0048 PEP copy (XEP-0223 node storage:bookmarks) follows too.
    const pepCopy = parse(await alice2.call('xep_0060', 'get_items', [aliceJid, 'storage:bookmarks']))
      .getChild('pubsub', PUBSUB)!
      .getChild('items')!
      .getChild('item')!
      .getChild('storage', 'storage:bookmarks')!;
    assert.deepEqual(pepCopy.getChildren('conference').map((c: Element) => c.attrs.jid), ['garden@conference.localhost']);
  });
});
