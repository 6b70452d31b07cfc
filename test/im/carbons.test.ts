// XEP-0280 Message Carbons with two resources of one user, @xmpp/client
// (laptop) and slixmpp (slix), talking to bob: <received/> and <sent/>
// copies go to the other carbons-enabled resource only, never for private,
// no-copy, error or groupchat messages, and stop once carbons are disabled.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Element, el, parse } from '../../src/xml/element.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { SlixClient } from '../helpers/slixmpp.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

type Stanza = Awaited<ReturnType<TestClient['waitFor']>>;

const CARBONS = 'urn:xmpp:carbons:2';
const FORWARD = 'urn:xmpp:forward:0';

/** The forwarded message inside a carbon of that direction, if `s` is one. */
function carbon(s: Element | Stanza, direction: 'sent' | 'received'): Element | undefined {
  if (!s.is('message') || s.attrs.from !== 'alice@localhost') return undefined;
  return s.getChild(direction, CARBONS)?.getChild('forwarded', FORWARD)?.getChild('message');
}

describe('message carbons', () => {
  let ts: TestServer;
  let laptop: TestClient;
  let slix: SlixClient;
  let bob: TestClient;

  /** bob sends a chat marker to slix; resolves once it arrived (everything before it did too). */
  async function markSlix(): Promise<void> {
    const id = `mark-${Math.random().toString(36).slice(2)}`;
    await bob.send(
      el('message', { to: 'alice@localhost/slix', type: 'chat', id }, el('body', null, 'marker')),
    );
    await slix.waitStanza((s) => s.attrs.id === id, 'marker');
  }

  /** Whether slix has received a carbon (either way) of message `id`. */
  function slixHasCarbonOf(id: string): boolean {
    return slix.events.some((e) => {
      if (e.event !== 'stanza') return false;
      const s = parse(e.xml!);
      return (carbon(s, 'sent') ?? carbon(s, 'received'))?.attrs.id === id;
    });
  }

  async function presence(c: TestClient, priority: number): Promise<void> {
    await c.send(el('presence', null, el('priority', null, String(priority))));
    await c.waitFor((s) => s.is('presence') && s.attrs.from === c.jid && !s.attrs.type, 'own presence');
  }

  before(async () => {
    ts = await startServer();
    await ts.addUser('alice', 'pw');
    await ts.addUser('bob', 'pw');
    laptop = await connect({ port: ts.port, username: 'alice', password: 'pw', resource: 'laptop' });
    slix = new SlixClient({ jid: 'alice@localhost/slix', password: 'pw', port: ts.port });
    await slix.started();
    bob = await connect({ port: ts.port, username: 'bob', password: 'pw', resource: 'desk' });
    await presence(laptop, 1);
    slix.send('<presence><priority>0</priority></presence>');
    await slix.waitStanza((s) => s.is('presence') && s.attrs.from === 'alice@localhost/slix', 'own presence');
    await presence(bob, 0);
  });
  after(async () => {
    await slix?.stop();
    await laptop?.stop();
    await bob?.stop();
    await ts.stop();
  });

  it('advertises urn:xmpp:carbons:2 on the server and on accounts', async () => {
    for (const to of ['localhost', 'alice@localhost']) {
      const info = await laptop.xmpp.iqCaller.request(
        el('iq', { type: 'get', to }, el('query', { xmlns: 'http://jabber.org/protocol/disco#info' })),
      );
      const vars = info
        .getChild('query')
        .getChildren('feature')
        .map((f: Stanza) => f.attrs.var);
      assert.ok(vars.includes(CARBONS), `${to}: ${vars.join(' ')}`);
    }
  });

  it('enables carbons on both resources', async () => {
    const r = await laptop.xmpp.iqCaller.request(el('iq', { type: 'set' }, el('enable', { xmlns: CARBONS })));
    assert.equal(r.attrs.type, 'result');
    slix.send(`<iq type='set' id='on'><enable xmlns='${CARBONS}'/></iq>`);
    const reply = await slix.waitStanza((s) => s.attrs.id === 'on', 'enable reply');
    assert.equal(reply.attrs.type, 'result');
  });

  it('copies a message received by one resource to the other as <received/>', async () => {
    await bob.send(
      el('message', { to: 'alice@localhost/laptop', type: 'chat', id: 'r1' }, el('body', null, 'hi laptop')),
    );
    const original = await laptop.waitFor((s) => s.attrs.id === 'r1', 'original');
    assert.equal(original.attrs.from, 'bob@localhost/desk');
    const copy = await slix.waitStanza((s) => carbon(s, 'received')?.attrs.id === 'r1', 'received carbon');
    assert.equal(copy.attrs.to, 'alice@localhost/slix');
    assert.equal(copy.attrs.type, 'chat');
    const inner = carbon(copy, 'received')!;
    assert.equal(inner.attrs.from, 'bob@localhost/desk');
    assert.equal(inner.attrs.to, 'alice@localhost/laptop');
    assert.equal(inner.getChildText('body'), 'hi laptop');
  });

  it('copies a bare-JID message only to the resources routing did not give it to', async () => {
    await bob.send(
      el('message', { to: 'alice@localhost', type: 'chat', id: 'r2' }, el('body', null, 'hi alice')),
    );
    await laptop.waitFor((s) => s.attrs.id === 'r2', 'original on the top resource');
    await slix.waitStanza((s) => carbon(s, 'received')?.attrs.id === 'r2', 'received carbon');
    await markSlix();
    assert.ok(
      !laptop.received.some((s) => carbon(s, 'received')?.attrs.id === 'r2'),
      'the recipient also got a carbon',
    );
  });

  it('copies a message sent by one resource to the other as <sent/>, both ways', async () => {
    await laptop.send(
      el('message', { to: 'bob@localhost', type: 'chat', id: 's1' }, el('body', null, 'from laptop')),
    );
    await bob.waitFor((s) => s.attrs.id === 's1', 'message on bob');
    const copy = await slix.waitStanza((s) => carbon(s, 'sent')?.attrs.id === 's1', 'sent carbon');
    const inner = carbon(copy, 'sent')!;
    assert.equal(inner.attrs.from, 'alice@localhost/laptop');
    assert.equal(inner.attrs.to, 'bob@localhost');

    slix.send(`<message to='bob@localhost/desk' type='chat' id='s2'><body>from slix</body></message>`);
    const copy2 = await laptop.waitFor((s) => carbon(s, 'sent')?.attrs.id === 's2', 'sent carbon on laptop');
    assert.equal(carbon(copy2, 'sent')!.attrs.from, 'alice@localhost/slix');
    await bob.waitFor((s) => s.attrs.id === 's2', 'message on bob');
    // The sender itself gets no copy of its own message.
    await markSlix();
    assert.ok(!slixHasCarbonOf('s2'));
  });

  it('honours <private/> (and strips it for the recipient) and the no-copy hint', async () => {
    await laptop.send(
      el(
        'message',
        { to: 'bob@localhost', type: 'chat', id: 'p1' },
        el('body', null, 'secret'),
        el('private', { xmlns: CARBONS }),
      ),
    );
    await laptop.send(
      el(
        'message',
        { to: 'bob@localhost', type: 'chat', id: 'p2' },
        el('body', null, 'no copy'),
        el('no-copy', { xmlns: 'urn:xmpp:hints' }),
      ),
    );
    await bob.send(
      el(
        'message',
        { to: 'alice@localhost/laptop', type: 'chat', id: 'p3' },
        el('body', null, 'psst'),
        el('private', { xmlns: CARBONS }),
      ),
    );
    const atBob = await bob.waitFor((s) => s.attrs.id === 'p1', 'private message on bob');
    assert.equal(atBob.getChild('private', CARBONS), undefined, 'the recipient got the <private/> hint');
    await laptop.waitFor((s) => s.attrs.id === 'p3', 'private message on laptop');
    await markSlix();
    for (const id of ['p1', 'p2', 'p3']) assert.ok(!slixHasCarbonOf(id), `carbon of ${id}`);
  });

  it('never copies errors or groupchat messages', async () => {
    await bob.send(
      el(
        'message',
        { to: 'alice@localhost/laptop', type: 'error', id: 'e1' },
        el(
          'error',
          { type: 'cancel' },
          el('item-not-found', { xmlns: 'urn:ietf:params:xml:ns:xmpp-stanzas' }),
        ),
      ),
    );
    await bob.send(
      el('message', { to: 'alice@localhost/laptop', type: 'groupchat', id: 'g1' }, el('body', null, 'room')),
    );
    await laptop.waitFor((s) => s.attrs.id === 'g1', 'groupchat on laptop');
    await markSlix();
    assert.ok(!slixHasCarbonOf('e1') && !slixHasCarbonOf('g1'));
  });

  it('stops copying once a resource disables carbons', async () => {
    slix.send(`<iq type='set' id='off'><disable xmlns='${CARBONS}'/></iq>`);
    assert.equal((await slix.waitStanza((s) => s.attrs.id === 'off', 'disable reply')).attrs.type, 'result');
    await bob.send(
      el('message', { to: 'alice@localhost/laptop', type: 'chat', id: 'd1' }, el('body', null, 'after')),
    );
    await laptop.send(
      el('message', { to: 'bob@localhost', type: 'chat', id: 'd2' }, el('body', null, 'after')),
    );
    await bob.waitFor((s) => s.attrs.id === 'd2', 'message on bob');
    await markSlix();
    assert.ok(!slixHasCarbonOf('d1') && !slixHasCarbonOf('d2'));
  });
});
