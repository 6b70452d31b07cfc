// Offline messages (XEP-0160) with real clients: stored with an XEP-0203
// delay stamp while the user has no available resource, delivered once at
// the next non-negative available presence, kept across a restart, and
// refused with service-unavailable once the user's queue is full.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { el, parse } from '../../src/xml/element.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { SlixClient } from '../helpers/slixmpp.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

type Stanza = Awaited<ReturnType<TestClient['waitFor']>>;

const LIMIT = 3;

describe('offline messages', () => {
  let ts: TestServer;
  let alice: SlixClient;
  const clients: TestClient[] = [];

  async function login(user: string, resource = 'r'): Promise<TestClient> {
    const c = await connect({ port: ts.port, username: user, password: 'pw', resource });
    clients.push(c);
    return c;
  }

  /** Sends available presence; resolves when the server has reflected it. */
  async function available(c: TestClient, priority = 0): Promise<void> {
    await c.send(el('presence', null, el('priority', null, String(priority))));
    await c.waitFor((s) => s.is('presence') && s.attrs.from === c.jid && !s.attrs.type, 'own presence');
  }

  /** Waits until `n` messages for `user` are in storage (storing is asynchronous). */
  async function stored(user: string, n: number): Promise<void> {
    const list = ts.server.storage.list(`offline`);
    const deadline = Date.now() + 5000;
    while ((await list.count(`${user}@localhost`)) !== n) {
      if (Date.now() > deadline) assert.fail(`expected ${n} stored messages for ${user}`);
      await new Promise((r) => setImmediate(r));
    }
  }

  function send(to: string, id: string, body: string, extra = ''): void {
    alice.send(`<message to='${to}' type='chat' id='${id}'><body>${body}</body>${extra}</message>`);
  }

  before(async () => {
    ts = await startServer({ limits: { offlineMaxMessages: LIMIT } });
    for (const u of ['alice', 'carol', 'dave', 'erin', 'frank']) await ts.addUser(u, 'pw');
    alice = new SlixClient({ jid: 'alice@localhost/slix', password: 'pw', port: ts.port });
    await alice.started();
  });
  after(async () => {
    await alice?.stop();
    for (const c of clients) await c.stop();
    await ts.stop();
  });

  it('advertises msgoffline', async () => {
    const c = await login('frank');
    const info = await c.xmpp.iqCaller.request(
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
    assert.ok(vars.includes('msgoffline'), vars.join(' '));
  });

  it('stores a message for an offline user and delivers it, stamped, at the next available presence', async () => {
    const before = new Date();
    send('carol@localhost', 'off1', 'while you were out');
    await stored('carol', 1);
    const carol = await login('carol');
    await available(carol);
    const m = await carol.waitFor((s) => s.attrs.id === 'off1', 'offline message');
    assert.equal(m.attrs.from, 'alice@localhost/slix');
    assert.equal(m.getChildText('body'), 'while you were out');
    const delay = m.getChild('delay', 'urn:xmpp:delay');
    assert.ok(delay, m.toString());
    assert.equal(delay.attrs.from, 'localhost');
    const stamp = new Date(delay.attrs.stamp);
    assert.ok(stamp.getTime() >= before.getTime() - 1000 && stamp.getTime() <= Date.now(), delay.attrs.stamp);
    await stored('carol', 0);
  });

  it('delivers them only once: a later session does not get them again', async () => {
    const again = await login('carol', 'again');
    await available(again);
    send('carol@localhost/again', 'after', 'live');
    await again.waitFor((s) => s.attrs.id === 'after', 'live marker');
    assert.ok(!again.received.some((s) => s.attrs.id === 'off1'), 'offline message delivered twice');
  });

  it('waits for a non-negative priority, and skips lone chat states', async () => {
    alice.send(
      `<message to='dave@localhost' type='chat' id='typing'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`,
    );
    send('dave@localhost', 'neg', 'for later');
    await stored('dave', 1);
    const dave = await login('dave');
    await available(dave, -1);
    // Negative: still stored (a live marker to the full JID arrives, the stored one does not).
    send(dave.jid, 'live', 'marker');
    await dave.waitFor((s) => s.attrs.id === 'live', 'live marker');
    assert.ok(!dave.received.some((s) => s.attrs.id === 'neg'));
    await available(dave, 1);
    await dave.waitFor((s) => s.attrs.id === 'neg', 'offline message after priority 1');
    assert.ok(!dave.received.some((s) => s.attrs.id === 'typing'), 'a lone chat state was stored');
  });

  it(`refuses more than ${LIMIT} messages with service-unavailable`, async () => {
    for (let i = 1; i <= LIMIT; i++) send('erin@localhost', `fill${i}`, `message ${i}`);
    send('erin@localhost', 'over', 'one too many');
    const err = await alice.waitStanza((s) => s.attrs.id === 'over', 'error for the message over the limit');
    assert.equal(err.attrs.type, 'error');
    assert.ok(err.getChild('error')?.getChild('service-unavailable'), err.toString());
    // Errors come back in order, so any for the first ones would be here by now.
    const refused = alice.events.filter(
      (e) => e.event === 'stanza' && parse(e.xml!).attrs.id?.startsWith('fill'),
    );
    assert.deepEqual(refused, []);
  });

  it('keeps them across a restart, in order', async () => {
    for (const c of clients.splice(0)) await c.stop();
    await alice.stop();
    ts = await ts.restart();
    const erin = await login('erin');
    await available(erin);
    for (let i = 1; i <= LIMIT; i++) {
      const m = await erin.waitFor((s) => s.is('message'), `stored message ${i}`);
      assert.equal(m.attrs.id, `fill${i}`);
      assert.ok(m.getChild('delay', 'urn:xmpp:delay'));
    }
  });
});
