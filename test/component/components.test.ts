// XEP-0114 external components against a real jabberfly: the handshake,
// refusals (wrong secret, unknown domain, no handshake, oversized input),
// routing both ways between a real client (@xmpp/client) and a hand-driven
// component, the from check, a component that drops (stanzas to it bounce)
// and comes back, and a second connection replacing the first.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import { ComponentService } from '../../src/component/component-service.ts';
import { RawComponent } from '../helpers/raw-component.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

const COMP = 'irc.localhost';
const SECRET = 'sesame';
const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';

describe('external components (XEP-0114)', () => {
  let ts: TestServer;
  let port: number;
  let alice: TestClient;
  let comp: RawComponent | undefined;

  before(async () => {
    ts = await startServer({
      component: { port: 0 },
      components: { [COMP]: { secret: SECRET } },
      limits: { maxStanzaSize: 16384, maxConnectionsPerIp: 4 },
    });
    port = ts.server.service(ComponentService)!.port!;
    await ts.addUser('alice', 'pw');
    alice = await connect({ port: ts.port, username: 'alice', password: 'pw', resource: 'desk' });
    await alice.send(xml('presence'));
  });
  after(async () => {
    comp?.destroy();
    await alice?.stop();
    await ts?.stop();
  });

  it('listens on loopback only by default', () => {
    const listen = ts.config.component.listen;
    assert.deepEqual(listen, ['127.0.0.1']);
  });

  it('holds one address to limits.maxConnectionsPerIp connections', async () => {
    const service = ts.server.service(ComponentService)!;
    const open = await Promise.all([1, 2, 3, 4].map(() => RawComponent.open(port)));
    const fifth = await RawComponent.open(port);
    assert.equal(await fifth.streamError(), 'policy-violation');
    for (const c of open) c.destroy();
    // The server sees the sockets close on its side in its own time.
    for (let i = 0; i < 250 && service.streams.size > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(service.streams.size, 0);
  });

  it('lists the component domain in the server\'s disco#items', async () => {
    await alice.send(xml('iq', { type: 'get', to: 'localhost', id: 'items' }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#items' })));
    const r = await alice.waitFor((s) => s.attrs.id === 'items', 'disco#items');
    const jids = r.getChild('query').getChildren('item').map((i: { attrs: { jid: string } }) => i.attrs.jid);
    assert.ok(jids.includes(COMP), jids.join(','));
  });

  it('bounces stanzas for a component that is not connected, saying so', async () => {
    await alice.send(xml('message', { to: `#chan@${COMP}`, type: 'chat', id: 'm0' }, xml('body', {}, 'anyone?')));
    const err = await alice.waitFor((s) => s.attrs.id === 'm0', 'bounce');
    assert.equal(err.attrs.type, 'error');
    assert.equal(err.attrs.from, `#chan@${COMP}`);
    const e = err.getChild('error');
    assert.equal(e.attrs.type, 'wait');
    assert.ok(e.getChild('service-unavailable', STANZAS));
    assert.match(e.getChildText('text', STANZAS), /not connected/);
  });

  it('refuses a wrong secret with not-authorized', async () => {
    const c = await RawComponent.open(port);
    const answer = await c.handshake(COMP, 'wrong');
    assert.equal(answer.name, 'stream:error');
    assert.ok(answer.getChild('not-authorized', 'urn:ietf:params:xml:ns:xmpp-streams'));
    await c.waitClosed();
    assert.equal(ts.server.service(ComponentService)!.connected(COMP), false);
  });

  it('refuses an unknown domain with host-unknown', async () => {
    const c = await RawComponent.open(port);
    c.write(
      "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='nope.localhost'>",
    );
    assert.equal(await c.streamError(), 'host-unknown');
    await c.waitClosed();
  });

  it('refuses a client stream on the component port', async () => {
    const c = await RawComponent.open(port);
    c.write(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${COMP}'>`);
    assert.equal(await c.streamError(), 'invalid-namespace');
  });

  it('closes a connection that does not complete the handshake in time', async () => {
    // On a server of its own: a short limits.authTimeout would also hurry
    // the logins of this file's users on a loaded machine.
    const quick = await startServer({
      component: { port: 0 },
      components: { [COMP]: { secret: SECRET } },
      limits: { authTimeout: 1 },
    });
    try {
      const c = await RawComponent.open(quick.server.service(ComponentService)!.port!);
      c.write(`<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='${COMP}'>`);
      assert.equal(await c.streamError(10000), 'connection-timeout');
    } finally {
      await quick.stop();
    }
  });

  it('applies the parser limits before the handshake', async () => {
    const c = await RawComponent.open(port);
    c.write(`<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='${COMP}'>`);
    c.write(`<handshake>${'a'.repeat(65536)}</handshake>`);
    assert.equal(await c.streamError(), 'policy-violation');
  });

  it('accepts the right secret and routes stanzas both ways', async () => {
    comp = await RawComponent.connect(port, COMP, SECRET);
    assert.equal(ts.server.service(ComponentService)!.connected(COMP), true);
    // `jabberfly status` shows it.
    const status = await ts.server.statusSections.collect();
    assert.match(String(status.components?.[COMP]), /^connected from 127\.0\.0\.1 since /);
    // A user's message to a JID at the component's domain reaches the component.
    await alice.send(xml('message', { to: `#chan%irc.test@${COMP}`, type: 'groupchat', id: 'g1' }, xml('body', {}, 'hello irc')));
    const got = await comp.waitFor((s) => s.name === 'message' && s.attrs.id === 'g1', 'message at component');
    assert.equal(got.attrs.from, 'alice@localhost/desk');
    assert.equal(got.getChildText('body'), 'hello irc');
    // An iq to the component's domain itself goes there too; its answer comes back.
    await alice.send(xml('iq', { type: 'get', to: COMP, id: 'v1' }, xml('query', { xmlns: 'jabber:iq:version' })));
    const iq = await comp.waitFor((s) => s.name === 'iq' && s.attrs.id === 'v1', 'iq at component');
    comp.send(
      `<iq type='result' id='v1' from='${COMP}' to='${iq.attrs.from}'><query xmlns='jabber:iq:version'><name>raw</name></query></iq>`,
    );
    const answer = await alice.waitFor((s) => s.attrs.id === 'v1', 'iq result');
    assert.equal(answer.attrs.type, 'result');
    assert.equal(answer.getChild('query').getChildText('name'), 'raw');
    // The component's own stanzas reach the user, from any JID at its domain.
    comp.send(`<message from='bob%irc.test@${COMP}' to='alice@localhost' type='chat'><body>hi alice</body></message>`);
    const m = await alice.waitFor((s) => s.is('message') && s.getChildText('body') === 'hi alice', 'message from component');
    assert.equal(m.attrs.from, `bob%irc.test@${COMP}`);
  });

  it('lets a new connection replace a stale one (conflict), and refuses a from outside its domain', async () => {
    const c = await RawComponent.connect(port, COMP, SECRET);
    assert.equal(await comp!.streamError(), 'conflict');
    comp = c;
    comp.send(`<message from='alice@localhost' to='alice@localhost' type='chat'><body>spoof</body></message>`);
    assert.equal(await comp.streamError(), 'invalid-from');
    await comp.waitClosed();
    assert.equal(alice.received.some((s) => s.getChildText('body') === 'spoof'), false);
  });

  it('refuses a second handshake and stanzas without a to', async () => {
    comp = await RawComponent.connect(port, COMP, SECRET);
    comp.send('<handshake>0000</handshake>');
    assert.equal(await comp.streamError(), 'policy-violation');
    comp = await RawComponent.connect(port, COMP, SECRET);
    comp.send(`<message from='x@${COMP}'><body>where to?</body></message>`);
    assert.equal(await comp.streamError(), 'improper-addressing');
  });

  it('shows a component that dropped as gone, and takes it back when it reconnects', async () => {
    comp?.destroy();
    const service = ts.server.service(ComponentService)!;
    // Wait for the server to notice (the socket closes asynchronously).
    for (let i = 0; i < 100 && service.connected(COMP); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(service.connected(COMP), false);
    await alice.send(xml('iq', { type: 'get', to: COMP, id: 'gone' }, xml('query', { xmlns: 'jabber:iq:version' })));
    const bounced = await alice.waitFor((s) => s.attrs.id === 'gone', 'bounce while gone');
    assert.ok(bounced.getChild('error').getChild('service-unavailable', STANZAS));
    assert.match(String((await ts.server.statusSections.collect()).components?.[COMP]), /^not connected/);
    comp = await RawComponent.connect(port, COMP, SECRET);
    await alice.send(xml('message', { to: `x@${COMP}`, type: 'chat', id: 'back' }, xml('body', {}, 'back?')));
    await comp.waitFor((s) => s.attrs.id === 'back', 'message after reconnect');
  });
});
