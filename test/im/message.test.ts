// Message delivery to local users (RFC 6121 §8.5) between two independent
// clients, slixmpp (alice) and @xmpp/client (bob, two resources): full and
// bare JIDs, priorities, forged senders, unknown users and message types.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { el } from '../../src/xml/element.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { SlixClient } from '../helpers/slixmpp.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

type Stanza = Awaited<ReturnType<TestClient['waitFor']>>;

/** Sends available presence and waits until the server reflects it (so it is in effect). */
async function available(c: TestClient, priority: number): Promise<void> {
  await c.send(el('presence', null, el('priority', null, String(priority))));
  await c.waitFor(
    (s) => s.is('presence') && s.attrs.from === c.jid && s.getChildText('priority') === String(priority),
    `${c.jid}'s own presence`,
  );
}

const withId = (id: string) => (s: Stanza) => s.attrs.id === id;

describe('message delivery', () => {
  let ts: TestServer;
  let alice: SlixClient;
  let desk: TestClient;
  let phone: TestClient;

  /** alice sends a message, then a marker to `to`; resolves when `c` has the marker. */
  async function markerTo(c: TestClient): Promise<void> {
    const id = `marker-${Math.random().toString(36).slice(2)}`;
    alice.send(`<message to='${c.jid}' type='chat' id='${id}'><body>marker</body></message>`);
    await c.waitFor(withId(id), 'marker');
  }

  before(async () => {
    ts = await startServer();
    await ts.addUser('alice', 'pw');
    await ts.addUser('bob', 'pw');
    alice = new SlixClient({ jid: 'alice@localhost/slix', password: 'pw', port: ts.port });
    await alice.started();
    desk = await connect({ port: ts.port, username: 'bob', password: 'pw', resource: 'desk' });
    phone = await connect({ port: ts.port, username: 'bob', password: 'pw', resource: 'phone' });
  });
  after(async () => {
    await alice?.stop();
    await desk?.stop();
    await phone?.stop();
    await ts.stop();
  });

  it('delivers chat to a full JID, with the from the server stamps (a forged one is replaced)', async () => {
    alice.send(
      `<message from='mallory@evil.example/x' to='bob@localhost/desk' type='chat' id='full1'><body>hi desk</body></message>`,
    );
    const m = await desk.waitFor(withId('full1'), 'message to full JID');
    assert.equal(m.attrs.from, 'alice@localhost/slix');
    assert.equal(m.getChildText('body'), 'hi desk');

    // And the other way, @xmpp/client to slixmpp.
    await desk.send(
      el('message', { to: 'alice@localhost/slix', type: 'chat', id: 'back1' }, el('body', null, 'hi alice')),
    );
    const back = await alice.waitStanza((s) => s.attrs.id === 'back1', 'reply to full JID');
    assert.equal(back.attrs.from, 'bob@localhost/desk');
    assert.equal(back.getChildText('body'), 'hi alice');
  });

  it('delivers to a bare JID only the available resource with the highest priority', async () => {
    await available(desk, 5);
    await available(phone, 1);
    alice.send(`<message to='bob@localhost' type='chat' id='bare1'><body>to the top one</body></message>`);
    const m = await desk.waitFor(withId('bare1'), 'bare message on the top resource');
    assert.equal(m.attrs.from, 'alice@localhost/slix');
    await markerTo(phone);
    assert.ok(!phone.received.some(withId('bare1')), 'the lower-priority resource got the bare message');
  });

  it('delivers to every resource that shares the highest priority', async () => {
    await available(phone, 5);
    alice.send(`<message to='bob@localhost' id='bare2'><body>to both</body></message>`);
    await desk.waitFor(withId('bare2'), 'bare message on desk');
    await phone.waitFor(withId('bare2'), 'bare message on phone');
  });

  it('treats chat to an unbound resource as chat to the bare JID, and drops a headline to it', async () => {
    await available(phone, 0);
    alice.send(`<message to='bob@localhost/gone' type='headline' id='gone-h'><body>news</body></message>`);
    alice.send(`<message to='bob@localhost/gone' type='chat' id='gone-c'><body>anyone?</body></message>`);
    const m = await desk.waitFor(withId('gone-c'), 'chat to unbound resource');
    assert.equal(m.attrs.to, 'bob@localhost/gone');
    assert.ok(!desk.received.some(withId('gone-h')), 'a headline to an unbound resource was delivered');
  });

  it('sends a headline to the bare JID to every non-negative resource', async () => {
    alice.send(`<message to='bob@localhost' type='headline' id='head1'><body>news</body></message>`);
    await desk.waitFor(withId('head1'), 'headline on desk');
    await phone.waitFor(withId('head1'), 'headline on phone');
  });

  it('never gives a bare message to a resource with negative priority', async () => {
    await available(phone, -1);
    alice.send(`<message to='bob@localhost' type='chat' id='neg1'><body>not for phone</body></message>`);
    await desk.waitFor(withId('neg1'), 'bare message on desk');
    await markerTo(phone);
    assert.ok(!phone.received.some(withId('neg1')), 'a negative-priority resource got a bare message');
  });

  it('refuses groupchat to a bare JID with service-unavailable', async () => {
    alice.send(`<message to='bob@localhost' type='groupchat' id='gc1'><body>room?</body></message>`);
    const err = await alice.waitStanza((s) => s.attrs.id === 'gc1', 'groupchat error');
    assert.equal(err.attrs.type, 'error');
    assert.equal(err.attrs.from, 'bob@localhost');
    assert.ok(err.getChild('error')?.getChild('service-unavailable'));
  });

  it('delivers a message to the sender’s own bare JID like any bare message', async () => {
    alice.send('<presence/>');
    await alice.waitStanza(
      (s) => s.is('presence') && s.attrs.from === 'alice@localhost/slix',
      'own presence',
    );
    alice.send(`<message to='alice@localhost' type='chat' id='self1'><body>note to self</body></message>`);
    const m = await alice.waitStanza(
      (s) => s.attrs.id === 'self1' && s.attrs.type === 'chat',
      'message to self',
    );
    assert.equal(m.attrs.from, 'alice@localhost/slix');
  });

  it('answers messages and iqs to a user that does not exist with service-unavailable', async () => {
    for (const to of ['nobody@localhost', 'nobody@localhost/res']) {
      const id = `missing-${to}`;
      await desk.send(el('message', { to, type: 'chat', id }, el('body', null, 'hello?')));
      const err = await desk.waitFor((s) => s.attrs.id === id && s.attrs.type === 'error', `error for ${to}`);
      assert.equal(err.attrs.from, to);
      assert.ok(err.getChild('error')?.getChild('service-unavailable'), err.toString());
      await assert.rejects(
        desk.xmpp.iqCaller.request(
          el('iq', { type: 'get', to }, el('query', { xmlns: 'jabber:iq:version' })),
        ),
        (e: { condition?: string }) => e.condition === 'service-unavailable',
      );
    }
  });
});
