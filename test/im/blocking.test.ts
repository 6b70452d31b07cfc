// XEP-0191 Blocking Command with real clients: alice (slixmpp and
// @xmpp/client resources) blocks bob, who is subscribed to her presence.
// Bob's stanzas stop reaching her (messages and iqs get service-unavailable,
// presence vanishes), hers to him are refused with <blocked/>, he sees her
// go offline and come back on unblock; pushes, errors and a restart.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { el } from '../../src/xml/element.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { SlixClient } from '../helpers/slixmpp.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

type Stanza = Awaited<ReturnType<TestClient['waitFor']>>;

const BLOCKING = 'urn:xmpp:blocking';
const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';

describe('blocking command', () => {
  let ts: TestServer;
  let slix: SlixClient;
  let laptop: TestClient;
  let bob: TestClient;
  let carol: TestClient;
  let n = 0;

  /** slix sends a block/unblock command; resolves with the reply. */
  async function command(action: 'block' | 'unblock', ...jids: string[]) {
    const id = `cmd${++n}`;
    const items = jids.map((j) => `<item jid='${j}'/>`).join('');
    slix.send(`<iq type='set' id='${id}'><${action} xmlns='${BLOCKING}'>${items}</${action}></iq>`);
    return slix.waitStanza((s) => s.attrs.id === id, `reply to ${action}`);
  }

  async function blocklist(c: TestClient): Promise<string[]> {
    const r = await c.xmpp.iqCaller.request(el('iq', { type: 'get' }, el('blocklist', { xmlns: BLOCKING })));
    return r
      .getChild('blocklist', BLOCKING)
      .getChildren('item')
      .map((i: Stanza) => i.attrs.jid);
  }

  /** carol sends laptop a marker; resolves once it arrived (so did anything routed before it). */
  async function markLaptop(): Promise<void> {
    const id = `mark${++n}`;
    await carol.send(
      el('message', { to: 'alice@localhost/laptop', type: 'chat', id }, el('body', null, 'marker')),
    );
    await laptop.waitFor((s) => s.attrs.id === id, 'marker');
  }

  const errorOf = (s: Stanza) => s.getChild('error');
  const isPresenceFromLaptop = (type?: string, status?: string) => (s: Stanza) =>
    s.is('presence') &&
    s.attrs.from === 'alice@localhost/laptop' &&
    s.attrs.type === type &&
    (status === undefined || s.getChildText('status') === status);

  async function start(): Promise<void> {
    slix = new SlixClient({ jid: 'alice@localhost/slix', password: 'pw', port: ts.port });
    await slix.started();
    laptop = await connect({ port: ts.port, username: 'alice', password: 'pw', resource: 'laptop' });
    bob = await connect({ port: ts.port, username: 'bob', password: 'pw', resource: 'desk' });
    carol = await connect({ port: ts.port, username: 'carol', password: 'pw', resource: 'r' });
    await laptop.send(el('presence', null, el('priority', null, '1')));
    await laptop.waitFor(isPresenceFromLaptop(undefined), 'own presence');
    for (const c of [bob, carol]) {
      await c.send(el('presence'));
      await c.waitFor((s) => s.is('presence') && s.attrs.from === c.jid, 'own presence');
    }
  }

  async function stopClients(): Promise<void> {
    await slix?.stop();
    for (const c of [laptop, bob, carol]) await c?.stop();
  }

  before(async () => {
    ts = await startServer({ limits: { blocklistMaxItems: 3 } });
    for (const u of ['alice', 'bob', 'carol']) await ts.addUser(u, 'pw');
    await start();
    // bob subscribes to alice's presence, and alice approves.
    await bob.send(el('presence', { to: 'alice@localhost', type: 'subscribe' }));
    await laptop.waitFor((s) => s.is('presence') && s.attrs.type === 'subscribe', 'subscription request');
    await laptop.send(el('presence', { to: 'bob@localhost', type: 'subscribed' }));
    await bob.waitFor(isPresenceFromLaptop(undefined), "alice's presence");
  });
  after(async () => {
    await stopClients();
    await ts.stop();
  });

  it('advertises urn:xmpp:blocking and starts with an empty list', async () => {
    const info = await laptop.xmpp.iqCaller.request(
      el(
        'iq',
        { type: 'get', to: 'localhost' },
        el('query', { xmlns: 'http://jabber.org/protocol/disco#info' }),
      ),
    );
    const vars = info
      .getChild('query')
      .getChildren('feature')
      .map((f: Stanza) => f.attrs.var);
    assert.ok(vars.includes(BLOCKING), vars.join(' '));
    assert.deepEqual(await blocklist(laptop), []);
  });

  it('refuses a block without items, a malformed JID, and one over limits.blocklistMaxItems', async () => {
    const empty = await command('block');
    assert.equal(empty.attrs.type, 'error');
    assert.ok(empty.getChild('error')?.getChild('bad-request'), empty.toString());
    const bad = await command('block', 'a@b@c');
    assert.ok(bad.getChild('error')?.getChild('jid-malformed'), bad.toString());
    const many = await command('block', 'a@x.example', 'b@x.example', 'c@x.example', 'd@x.example');
    assert.ok(many.getChild('error')?.getChild('policy-violation'), many.toString());
    assert.deepEqual(await blocklist(laptop), []);
  });

  it('blocks bob: result, a push to the resource that fetched the list, and bob sees alice go offline', async () => {
    const reply = await command('block', 'Bob@localhost');
    assert.equal(reply.attrs.type, 'result');
    const push = await laptop.waitFor((s) => s.is('iq') && s.attrs.type === 'set', 'block push');
    assert.deepEqual(
      push
        .getChild('block', BLOCKING)
        .getChildren('item')
        .map((i: Stanza) => i.attrs.jid),
      ['bob@localhost'],
    );
    await bob.waitFor(isPresenceFromLaptop('unavailable'), 'unavailable presence from alice');
    assert.deepEqual(await blocklist(laptop), ['bob@localhost']);
  });

  it("answers bob's messages and iqs with service-unavailable and drops his presence", async () => {
    await bob.send(
      el('message', { to: 'alice@localhost', type: 'chat', id: 'blocked1' }, el('body', null, 'hello?')),
    );
    const err = await bob.waitFor((s) => s.attrs.id === 'blocked1', 'error for the blocked message');
    assert.equal(err.attrs.type, 'error');
    assert.ok(errorOf(err)?.getChild('service-unavailable', STANZAS), err.toString());
    await assert.rejects(
      bob.xmpp.iqCaller.request(
        el('iq', { type: 'get', to: 'alice@localhost/laptop' }, el('query', { xmlns: 'jabber:iq:version' })),
      ),
      (e: { condition?: string }) => e.condition === 'service-unavailable',
    );
    await bob.send(el('presence', { to: 'alice@localhost/laptop', id: 'directed' }));
    await markLaptop();
    assert.ok(!laptop.received.some((s) => s.attrs.id === 'blocked1' || s.attrs.id === 'directed'));
  });

  it('refuses alice’s stanzas to bob with not-acceptable and <blocked/>', async () => {
    await laptop.send(
      el('message', { to: 'bob@localhost/desk', type: 'chat', id: 'out1' }, el('body', null, 'hi bob')),
    );
    const err = await laptop.waitFor((s) => s.attrs.id === 'out1', 'error for the outgoing message');
    assert.equal(err.attrs.type, 'error');
    assert.equal(errorOf(err).attrs.type, 'cancel');
    assert.ok(errorOf(err).getChild('not-acceptable', STANZAS));
    assert.ok(errorOf(err).getChild('blocked', 'urn:xmpp:blocking:errors'));
  });

  it('hides alice’s presence changes from bob, and shows the current one on unblock', async () => {
    for (const status of ['hidden', 'back']) {
      await laptop.send(el('presence', null, el('priority', null, '1'), el('status', null, status)));
      await laptop.waitFor(isPresenceFromLaptop(undefined, status), 'own presence');
    }
    const reply = await command('unblock', 'bob@localhost');
    assert.equal(reply.attrs.type, 'result');
    await bob.waitFor(isPresenceFromLaptop(undefined, 'back'), 'current presence after unblock');
    assert.ok(
      !bob.received.some(isPresenceFromLaptop(undefined, 'hidden')),
      'a presence change leaked while blocked',
    );
    const push = await laptop.waitFor((s) => s.is('iq') && s.attrs.type === 'set', 'unblock push');
    assert.equal(push.getChild('unblock', BLOCKING).getChildren('item')[0].attrs.jid, 'bob@localhost');

    await bob.send(
      el('message', { to: 'alice@localhost', type: 'chat', id: 'again' }, el('body', null, 'hi again')),
    );
    await laptop.waitFor((s) => s.attrs.id === 'again', 'message after unblock');
  });

  it('matches domains and subdomains, and unblocks everything at once', async () => {
    await command('block', 'evil.example', 'carol@localhost');
    await laptop.waitFor((s) => s.is('iq') && s.attrs.type === 'set', 'block push');
    await laptop.send(
      el('message', { to: 'x@sub.evil.example', type: 'chat', id: 'sub' }, el('body', null, 'hi')),
    );
    const err = await laptop.waitFor((s) => s.attrs.id === 'sub', 'error for a blocked subdomain');
    assert.ok(errorOf(err).getChild('blocked', 'urn:xmpp:blocking:errors'), err.toString());

    const reply = await command('unblock');
    assert.equal(reply.attrs.type, 'result');
    const push = await laptop.waitFor((s) => s.is('iq') && s.attrs.type === 'set', 'unblock-all push');
    assert.deepEqual(push.getChild('unblock', BLOCKING).getChildren('item'), []);
    assert.deepEqual(await blocklist(laptop), []);
  });

  it('keeps the blocklist across a restart', async () => {
    await command('block', 'bob@localhost');
    await stopClients();
    ts = await ts.restart();
    await start();
    await bob.send(
      el('message', { to: 'alice@localhost', type: 'chat', id: 'restart' }, el('body', null, 'still?')),
    );
    const err = await bob.waitFor((s) => s.attrs.id === 'restart', 'error after restart');
    assert.ok(errorOf(err)?.getChild('service-unavailable', STANZAS), err.toString());
  });
});
