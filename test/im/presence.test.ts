// Presence and subscriptions (RFC 6121 §3–4) between real clients:
// @xmpp/client on one side, Debian's slixmpp on the other where it matters.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import { Jid } from '../../src/jid/jid.ts';
import { RosterStore, type Subscription } from '../../src/storage/roster.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { SlixClient } from '../helpers/slixmpp.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

const ROSTER = 'jabber:iq:roster';

type Stanza = Awaited<ReturnType<TestClient['waitFor']>>;

function rosterGet(c: TestClient): Promise<Stanza> {
  return c.xmpp.iqCaller.request(xml('iq', { type: 'get' }, xml('query', { xmlns: ROSTER })));
}

function pushedItem(s: Stanza): Stanza | undefined {
  return s.is('iq') && s.attrs.type === 'set' ? s.getChild('query', ROSTER)?.getChild('item') : undefined;
}

function isPush(jid: string, subscription: string, ask?: string) {
  return (s: Stanza) => {
    const item = pushedItem(s);
    return item?.attrs.jid === jid && item.attrs.subscription === subscription && item.attrs.ask === ask;
  };
}

function isPresence(from: string, type?: string) {
  return (s: Stanza) => s.is('presence') && s.attrs.from === from && s.attrs.type === type;
}

async function subscriptionOf(c: TestClient, jid: string): Promise<string | undefined> {
  const result = await rosterGet(c);
  const item = result
    .getChild('query', ROSTER)
    .getChildren('item')
    .find((i: Stanza) => i.attrs.jid === jid);
  return item?.attrs.subscription;
}

/** Asserts nothing matching `unwanted` reached `c` before a marker message sent after it. */
async function assertNothingBefore(
  c: TestClient,
  sender: TestClient,
  unwanted: (s: Stanza) => boolean,
): Promise<void> {
  const id = `marker-${Math.random().toString(36).slice(2)}`;
  await sender.send(xml('message', { to: c.jid, id, type: 'chat' }, xml('body', {}, 'marker')));
  await c.waitFor((s) => s.is('message') && s.attrs.id === id, 'marker');
  assert.deepEqual(c.received.filter(unwanted).map(String), []);
}

describe('presence and subscriptions', () => {
  let ts: TestServer;
  const clients: Array<TestClient | SlixClient> = [];
  const login = async (username: string, resource?: string): Promise<TestClient> => {
    const c = await connect({ port: ts.port, username, password: 'pw', resource });
    clients.push(c);
    return c;
  };
  /** Logs in, asks for the roster and sends initial presence (what real clients do). */
  const online = async (
    username: string,
    resource?: string,
    presence = xml('presence'),
  ): Promise<TestClient> => {
    const c = await login(username, resource);
    await rosterGet(c);
    await c.send(presence);
    await c.waitFor(isPresence(c.jid), 'own presence reflected');
    return c;
  };
  const slix = async (user: string): Promise<SlixClient> => {
    const c = new SlixClient({ jid: `${user}@localhost/slix`, password: 'pw', port: ts.port });
    clients.push(c);
    await c.started();
    c.send(`<iq type='get' id='roster1'><query xmlns='${ROSTER}'/></iq>`);
    await c.waitStanza((s) => s.attrs.id === 'roster1', 'roster result');
    return c;
  };
  /** A mutual subscription, set up the way the MSN gateway would: in-process, no client involved. */
  const befriend = async (a: string, b: string, sub: Subscription = 'both') => {
    const store = ts.server.store(RosterStore);
    const back: Subscription = sub === 'both' ? 'both' : sub === 'to' ? 'from' : 'to';
    await store.setItem(`${a}@localhost`, { jid: `${b}@localhost`, subscription: sub, groups: [] });
    await store.setItem(`${b}@localhost`, { jid: `${a}@localhost`, subscription: back, groups: [] });
  };

  before(async () => {
    // @xmpp/client enables stream management: a dropped socket's session
    // waits sm.resumeTimeout to be resumed before it goes unavailable.
    ts = await startServer({ sm: { resumeTimeout: 1 } });
    const users = [
      'alice',
      'bob',
      'carol',
      'dave',
      'erin',
      'frank',
      'gina',
      'hank',
      'ivy',
      'jack',
      'kate',
      'leo',
      'mia',
      'ned',
      'olga',
      'pat',
      'quinn',
      'rita',
      'sam',
      'tom',
      'uma',
    ];
    for (const u of users) await ts.addUser(u, 'pw');
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    await ts.stop();
  });

  it('two users subscribe to each other and both end with subscription both', async () => {
    const alice = await online('alice');
    const bob = await online('bob');

    await alice.send(xml('presence', { to: 'bob@localhost', type: 'subscribe' }));
    await alice.waitFor(isPush('bob@localhost', 'none', 'subscribe'), 'alice: none + ask');
    const request = await bob.waitFor(
      (s) => s.is('presence') && s.attrs.type === 'subscribe',
      'request at bob',
    );
    assert.equal(request.attrs.from, 'alice@localhost', 'subscription stanzas carry the bare JID');

    await bob.send(xml('presence', { to: 'alice@localhost', type: 'subscribed' }));
    await bob.waitFor(isPush('alice@localhost', 'from'), 'bob: from');
    await alice.waitFor(isPush('bob@localhost', 'to'), 'alice: to');
    await alice.waitFor(isPresence('bob@localhost', 'subscribed'), 'approval at alice');
    await alice.waitFor(isPresence(bob.jid), "bob's presence now reaches alice");

    await bob.send(xml('presence', { to: 'alice@localhost', type: 'subscribe' }));
    await bob.waitFor(isPush('alice@localhost', 'from', 'subscribe'), 'bob: from + ask');
    await alice.waitFor(isPresence('bob@localhost', 'subscribe'), 'request at alice');
    await alice.send(xml('presence', { to: 'bob@localhost', type: 'subscribed' }));
    await alice.waitFor(isPush('bob@localhost', 'both'), 'alice: both');
    await bob.waitFor(isPush('alice@localhost', 'both'), 'bob: both');
    await bob.waitFor(isPresence(alice.jid), "alice's presence now reaches bob");

    assert.equal(await subscriptionOf(alice, 'bob@localhost'), 'both');
    assert.equal(await subscriptionOf(bob, 'alice@localhost'), 'both');
  });

  it('slixmpp and @xmpp/client: subscription, then show, status and vCard updates pass through untouched', async () => {
    const carol = await online('carol');
    const dave = await slix('dave');
    dave.send('<presence/>');
    await dave.waitStanza((s) => s.is('presence') && s.attrs.from === dave.jid, 'dave reflected');

    await carol.send(xml('presence', { to: 'dave@localhost', type: 'subscribe' }));
    // slixmpp answers subscription requests by itself (auto_authorize) and subscribes back.
    await carol.waitFor(isPush('dave@localhost', 'to'), 'carol: to');
    await carol.waitFor(isPresence('dave@localhost', 'subscribe'), 'dave asks back');
    await carol.send(xml('presence', { to: 'dave@localhost', type: 'subscribed' }));
    await carol.waitFor(isPush('dave@localhost', 'both'), 'carol: both');
    assert.equal(await subscriptionOf(carol, 'dave@localhost'), 'both');

    dave.send(
      "<presence><show>away</show><status>out for lunch</status><priority>5</priority><x xmlns='vcard-temp:x:update'><photo>0123abcd</photo></x><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v='/></presence>",
    );
    const p = await carol.waitFor(
      (s) => isPresence(dave.jid)(s) && s.getChildText('show') === 'away',
      'dave away',
    );
    assert.equal(p.getChildText('status'), 'out for lunch');
    assert.equal(p.getChildText('priority'), '5');
    assert.equal(p.getChild('x', 'vcard-temp:x:update')?.getChildText('photo'), '0123abcd');
    assert.equal(p.getChild('c', 'http://jabber.org/protocol/caps')?.attrs.ver, 'v=');
    assert.equal(ts.server.sessions.get(Jid.parse(dave.jid))?.priority, 5);

    await carol.send(xml('presence', {}, xml('show', {}, 'dnd'), xml('status', {}, 'busy busy')));
    const q = await dave.waitStanza(
      (s) => s.is('presence') && s.attrs.from === carol.jid && s.getChildText('show') === 'dnd',
      'carol dnd',
    );
    assert.equal(q.getChildText('status'), 'busy busy');
  });

  it("probes give a late-comer its contacts' current presence, and unavailable for offline ones", async () => {
    await befriend('erin', 'frank');
    await befriend('frank', 'gina');
    const erin = await online(
      'erin',
      'desk',
      xml('presence', {}, xml('show', {}, 'xa'), xml('status', {}, 'gone fishing')),
    );
    const frank = await slix('frank');
    frank.send('<presence/>');
    const p = await frank.waitStanza((s) => s.is('presence') && s.attrs.from === erin.jid, "erin's presence");
    assert.equal(p.getChildText('show'), 'xa');
    assert.equal(p.getChildText('status'), 'gone fishing');
    const offline = await frank.waitStanza(
      (s) => s.is('presence') && s.attrs.from === 'gina@localhost',
      'gina offline',
    );
    assert.equal(offline.attrs.type, 'unavailable');
    await erin.waitFor(isPresence('frank@localhost/slix'), "frank's initial presence reaches erin");
  });

  it('a dropped socket sends unavailable to the contacts (once it can no longer be resumed)', async () => {
    await befriend('hank', 'ivy');
    const hank = await online('hank');
    const ivy = await online('ivy');
    await ivy.waitFor(isPresence(hank.jid), 'hank available');
    // No </stream>, no TLS close: the TCP connection just goes away.
    hank.xmpp.socket!.socket!.destroy();
    const gone = await ivy.waitFor(isPresence(hank.jid, 'unavailable'), 'hank unavailable');
    assert.equal(gone.attrs.to, 'ivy@localhost');
    assert.equal(ts.server.sessions.available('hank@localhost').length, 0);
  });

  it('directed presence reaches its recipient, later broadcasts do not, and logout sends unavailable', async () => {
    const jack = await online('jack');
    const kate = await online('kate');
    await jack.send(xml('presence', { to: kate.jid }, xml('status', {}, 'just for you')));
    const direct = await kate.waitFor(isPresence(jack.jid), 'directed presence');
    assert.equal(direct.getChildText('status'), 'just for you');
    await jack.send(xml('presence', {}, xml('status', {}, 'for my contacts')));
    await jack.waitFor(
      (s) => isPresence(jack.jid)(s) && s.getChildText('status') === 'for my contacts',
      'reflected',
    );
    await assertNothingBefore(kate, jack, (s) => s.is('presence') && s.attrs.from === jack.jid);
    await jack.stop();
    await kate.waitFor(isPresence(jack.jid, 'unavailable'), 'unavailable after logout');
  });

  it('re-delivers a pending request at login, and a refusal reaches the requester', async () => {
    const leo = await online('leo');
    await leo.send(
      xml('presence', { to: 'mia@localhost', type: 'subscribe' }, xml('status', {}, "it's leo")),
    );
    await leo.waitFor(isPush('mia@localhost', 'none', 'subscribe'), 'leo: ask');
    const mia = await login('mia');
    await rosterGet(mia);
    await mia.send(xml('presence'));
    const request = await mia.waitFor(isPresence('leo@localhost', 'subscribe'), 'request at login');
    assert.equal(request.getChildText('status'), "it's leo");

    await mia.send(xml('presence', { to: 'leo@localhost', type: 'unsubscribed' }));
    await leo.waitFor(isPush('mia@localhost', 'none'), 'leo: ask cleared');
    await leo.waitFor(isPresence('mia@localhost', 'unsubscribed'), 'refusal at leo');
    // Refused means forgotten: the next login does not bring the request back.
    const mia2 = await login('mia', 'second');
    await mia2.send(xml('presence'));
    await mia2.waitFor(isPresence(mia2.jid), 'mia2 reflected');
    await assertNothingBefore(mia2, leo, isPresence('leo@localhost', 'subscribe'));
  });

  it('pre-approval: subscribed before any request approves the request when it comes', async () => {
    const ned = await online('ned');
    const olga = await online('olga');
    await ned.send(xml('presence', { to: 'olga@localhost', type: 'subscribed' }));
    const pre = await ned.waitFor(isPush('olga@localhost', 'none'), 'pre-approved item');
    assert.equal(pushedItem(pre)!.attrs.approved, 'true');
    await assertNothingBefore(olga, ned, (s) => s.is('presence') && s.attrs.from === 'ned@localhost');

    await olga.send(xml('presence', { to: 'ned@localhost', type: 'subscribe' }));
    await olga.waitFor(isPush('ned@localhost', 'to'), 'olga: to');
    await olga.waitFor(isPresence('ned@localhost', 'subscribed'), 'approved at once');
    await olga.waitFor(isPresence(ned.jid), "ned's presence");
    const approved = await ned.waitFor(isPush('olga@localhost', 'from'), 'ned: from');
    assert.equal(pushedItem(approved)!.attrs.approved, undefined);
    await assertNothingBefore(ned, olga, isPresence('olga@localhost', 'subscribe'));
  });

  it('removing a contact from the roster cancels both subscriptions', async () => {
    await befriend('pat', 'quinn');
    const pat = await online('pat');
    const quinn = await online('quinn');
    await quinn.waitFor(isPresence(pat.jid), 'pat available');
    await pat.xmpp.iqCaller.request(
      xml(
        'iq',
        { type: 'set' },
        xml('query', { xmlns: ROSTER }, xml('item', { jid: 'quinn@localhost', subscription: 'remove' })),
      ),
    );
    await pat.waitFor(isPush('quinn@localhost', 'remove'), 'pat: removed');
    await quinn.waitFor(isPresence('pat@localhost', 'unsubscribe'), 'unsubscribe at quinn');
    await quinn.waitFor(isPresence('pat@localhost', 'unsubscribed'), 'unsubscribed at quinn');
    await quinn.waitFor(isPresence(pat.jid, 'unavailable'), 'pat gone for quinn');
    await quinn.waitFor(isPush('pat@localhost', 'none'), 'quinn: none');
    assert.equal(await subscriptionOf(quinn, 'pat@localhost'), 'none');
  });

  it('unsubscribe ends one direction and the contact stops showing as available', async () => {
    await befriend('rita', 'sam');
    const rita = await online('rita');
    const sam = await online('sam');
    await rita.waitFor(isPresence(sam.jid), 'sam available');
    await rita.send(xml('presence', { to: 'sam@localhost', type: 'unsubscribe' }));
    await rita.waitFor(isPush('sam@localhost', 'from'), 'rita: from');
    await sam.waitFor(isPush('rita@localhost', 'to'), 'sam: to');
    await sam.waitFor(isPresence('rita@localhost', 'unsubscribe'), 'unsubscribe at sam');
    await rita.waitFor(isPresence(sam.jid, 'unavailable'), "sam's resources go unavailable for rita");
    // Sam's later updates no longer reach rita.
    await sam.send(xml('presence', {}, xml('status', {}, 'after')));
    await sam.waitFor((s) => isPresence(sam.jid)(s) && s.getChildText('status') === 'after', 'reflected');
    await assertNothingBefore(
      rita,
      sam,
      (s) => isPresence(sam.jid)(s) && s.getChildText('status') === 'after',
    );
  });

  it('presence to a bare JID reaches every available resource; priorities are kept; bad types are refused', async () => {
    const tomA = await online('tom', 'a', xml('presence', {}, xml('priority', {}, '1')));
    const tomB = await online('tom', 'b', xml('presence', {}, xml('priority', {}, '-1')));
    const uma = await online('uma');
    assert.equal(ts.server.sessions.get(Jid.parse(tomA.jid))?.priority, 1);
    assert.equal(ts.server.sessions.get(Jid.parse(tomB.jid))?.priority, -1);
    await tomA.waitFor(isPresence(tomB.jid), "a hears b's initial presence");
    await tomB.waitFor(isPresence(tomA.jid), 'b is told about a');

    await uma.send(xml('presence', { to: 'tom@localhost' }, xml('status', {}, 'hi tom')));
    for (const c of [tomA, tomB]) {
      const p = await c.waitFor(isPresence(uma.jid), 'directed to the bare JID');
      assert.equal(p.getChildText('status'), 'hi tom');
    }

    await uma.send(xml('presence', { to: 'tom@localhost', type: 'bogus', id: 'bad1' }));
    const err = await uma.waitFor((s) => s.is('presence') && s.attrs.id === 'bad1', 'error');
    assert.equal(err.attrs.type, 'error');
    assert.ok(err.getChild('error').getChild('bad-request', 'urn:ietf:params:xml:ns:xmpp-stanzas'));

    await tomB.send(xml('presence', { type: 'unavailable' }));
    await tomA.waitFor(isPresence(tomB.jid, 'unavailable'), 'b unavailable');
    assert.equal(ts.server.sessions.get(Jid.parse(tomB.jid))?.presence, null);
  });
});
