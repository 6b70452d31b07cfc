// Push notifications (XEP-0357) over federation: users of a.test register
// an app server whose pubsub endpoint is a Debian slixmpp client on a
// second jabberfly, b.test (reached over s2s with Server Dialback, as in
// test/s2s/jabberfly-pair.test.ts). Debian's slixmpp 1.8.3 has no XEP-0357
// client plugin, so the users' clients send the enable/disable iqs as
// written in the XEP (@xmpp/client, and a raw stream-managed socket for a
// session held by XEP-0198); the app server answers each publish itself.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import { type Element, parse } from '../../src/xml/element.ts';
import { removeAccount } from '../../src/modules/account-removal.ts';
import { S2SService } from '../../src/s2s/s2s-service.ts';
import { PushStore } from '../../src/storage/push.ts';
import { rawLogin } from '../helpers/raw-socket.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { SlixClient } from '../helpers/slixmpp.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

const PUSH = 'urn:xmpp:push:0';
const PUBSUB = 'http://jabber.org/protocol/pubsub';
const APP = 'app@b.test/appserver';

function s2sPort(ts: TestServer): number {
  const s = ts.server.service(S2SService);
  assert.ok(s, 's2s service running');
  return s.ports.starttls!;
}

/** The enable iq a client sends (XEP-0357 §5), with a secret in publish options. */
function enableIq(node: string, secret: string) {
  return xml(
    'iq',
    { type: 'set', id: `en-${node}` },
    xml(
      'enable',
      { xmlns: PUSH, jid: APP, node },
      xml(
        'x',
        { xmlns: 'jabber:x:data', type: 'submit' },
        xml('field', { var: 'FORM_TYPE' }, xml('value', {}, 'http://jabber.org/protocol/pubsub#publish-options')),
        xml('field', { var: 'secret' }, xml('value', {}, secret)),
      ),
    ),
  );
}

interface Notification {
  iq: Element;
  from: string;
  node: string;
  fields: Record<string, string[]>;
  options: Record<string, string[]>;
}

function fieldsOf(x: Element | undefined): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const f of x?.getChildren('field') ?? []) out[f.attrs.var] = f.getChildren('value').map((v: Element) => v.text());
  return out;
}

function readNotification(iq: Element): Notification {
  const pubsub = iq.getChild('pubsub', PUBSUB)!;
  const publish = pubsub.getChild('publish')!;
  const x = publish.getChild('item')?.getChild('notification', PUSH)?.getChild('x', 'jabber:x:data');
  return {
    iq,
    from: iq.attrs.from,
    node: publish.attrs.node ?? '',
    fields: fieldsOf(x),
    options: fieldsOf(pubsub.getChild('publish-options')?.getChild('x', 'jabber:x:data')),
  };
}

const isPublish = (node: string) => (s: Element) =>
  s.is('iq') && s.attrs.type === 'set' && s.getChild('pubsub', PUBSUB)?.getChild('publish')?.attrs.node === node;

/** Resolves once `cond()` holds, polling (for state with no event to wait on); the bound is a failure bound. */
async function until(cond: () => boolean, what: string, ms = 15000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('push notifications (XEP-0357) to an app server over s2s', () => {
  let a: TestServer;
  let b: TestServer;
  let app: SlixClient;
  let carol: TestClient;

  /** The app server's next notification for `node`; it answers with `reply` (a result unless told). */
  async function nextNotification(node: string, reply?: (iq: Element) => string): Promise<Notification> {
    const iq = await app.waitStanza(isPublish(node), `notification on ${node}`, 20000);
    app.send(reply ? reply(iq) : `<iq type='result' id='${iq.attrs.id}' to='${iq.attrs.from}'/>`);
    return readNotification(iq);
  }

  /** Publishes the app server got for `node` and has not been asked about. */
  const unclaimed = (node: string) => app.events.filter((e) => e.event === 'stanza' && isPublish(node)(parse(e.xml!)));

  before(async () => {
    a = await startServer({ domain: 'a.test', s2s: { port: 0, directTlsPort: 0, connectTimeout: 5 }, push: { timeout: 20 } });
    b = await startServer({ domain: 'b.test', s2s: { port: 0, directTlsPort: 0, connectTimeout: 5 } });
    a.config.s2s.routes['b.test'] = `127.0.0.1:${s2sPort(b)}`;
    b.config.s2s.routes['a.test'] = `127.0.0.1:${s2sPort(a)}`;
    for (const u of ['alice', 'carol', 'dave', 'erin']) await a.addUser(u, 'pw');
    await b.addUser('app', 'pw');
    app = new SlixClient({ jid: APP, password: 'pw', port: b.port });
    await app.started();
    carol = await connect({ port: a.port, domain: 'a.test', username: 'carol', password: 'pw', resource: 'desk' });
  });
  after(async () => {
    await carol?.stop();
    await app?.stop();
    await a?.stop();
    await b?.stop();
  });

  /** dave's registration on node 'marker': a notification that comes after everything sent before it. */
  let markerReady = false;
  async function marker(): Promise<void> {
    if (!markerReady) {
      const dave = await connect({ port: a.port, domain: 'a.test', username: 'dave', password: 'pw', resource: 'phone' });
      const answer = await dave.xmpp.iqCaller.request(enableIq('marker', 'd'));
      assert.equal(answer.attrs.type, 'result');
      await dave.stop();
      markerReady = true;
    }
    await carol.xmpp.send(xml('message', { to: 'dave@a.test', type: 'chat' }, xml('body', {}, 'marker')));
    await nextNotification('marker');
  }

  it('a message for a user whose push-enabled client is gone reaches the app server as a summary without the body', async () => {
    const alice = await connect({ port: a.port, domain: 'a.test', username: 'alice', password: 'pw', resource: 'phone' });
    const info = await alice.xmpp.iqCaller.request(
      xml('iq', { type: 'get', to: 'alice@a.test' }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })),
    );
    assert.ok(info.getChild('query').getChildren('feature').some((f: Element) => f.attrs.var === PUSH), 'the account advertises push');
    const ok = await alice.xmpp.iqCaller.request(enableIq('alice-phone', 's3cret'));
    assert.equal(ok.attrs.type, 'result');
    // While the client is online, it gets its messages itself: no push.
    await alice.xmpp.send(xml('presence'));
    await carol.xmpp.send(xml('message', { to: 'alice@a.test', type: 'chat' }, xml('body', {}, 'online one')));
    await alice.waitFor((s) => s.is('message') && s.getChildText('body') === 'online one', 'live message');
    await alice.stop();

    await carol.xmpp.send(xml('message', { to: 'alice@a.test', type: 'chat' }, xml('body', {}, 'the secret plan')));
    const n1 = await nextNotification('alice-phone');
    assert.equal(n1.from, 'alice@a.test', 'published by the user’s bare JID');
    assert.deepEqual(n1.fields.FORM_TYPE, ['urn:xmpp:push:summary']);
    assert.deepEqual(n1.fields['message-count'], ['1']);
    assert.deepEqual(n1.fields['last-message-sender'], ['carol@a.test/desk']);
    assert.equal(n1.fields['last-message-body'], undefined, 'no body by default');
    assert.ok(!n1.iq.toString().includes('the secret plan'), 'the text goes nowhere near the app server');
    assert.deepEqual(n1.options.secret, ['s3cret'], 'the publish options come back');
    // A chat state alone does not wake anyone.
    await carol.xmpp.send(xml('message', { to: 'alice@a.test', type: 'chat' }, xml('composing', { xmlns: 'http://jabber.org/protocol/chatstates' })));
    await carol.xmpp.send(xml('message', { to: 'alice@a.test', type: 'chat' }, xml('body', {}, 'second')));
    const n2 = await nextNotification('alice-phone');
    assert.deepEqual(n2.fields['message-count'], ['2'], 'counted since the client was last online');

    // The client comes back (the count starts over) and disables push: nothing more is sent.
    const back = await connect({ port: a.port, domain: 'a.test', username: 'alice', password: 'pw', resource: 'phone' });
    const off = await back.xmpp.iqCaller.request(xml('iq', { type: 'set' }, xml('disable', { xmlns: PUSH, jid: APP, node: 'alice-phone' })));
    assert.equal(off.attrs.type, 'result');
    await back.stop();
    await carol.xmpp.send(xml('message', { to: 'alice@a.test', type: 'chat' }, xml('body', {}, 'after disable')));
    await marker();
    assert.equal(unclaimed('alice-phone').length, 0, 'no notification after disable');
    assert.equal(a.server.store(PushStore).get('alice@a.test').length, 0);
  });

  it('a message held for a stream-managed session waiting to be resumed wakes its client', async () => {
    const s = await rawLogin(a.port, 'alice', 'pw', 'mobile', undefined, 'a.test');
    s.write(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`);
    await s.waitFor(/<enabled[^>]*\/>/);
    s.write(
      `<iq type='set' id='pe'><enable xmlns='${PUSH}' jid='${APP}' node='alice-mobile'>` +
        `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>` +
        `<field var='secret'><value>m0bile</value></field></x></enable></iq>`,
    );
    await s.waitFor(/<iq[^>]*id=["']pe["'][^>]*type=["']result["']|<iq[^>]*type=["']result["'][^>]*id=["']pe["']/);
    // The connection drops without a closing tag: the session is held for resumption.
    s.destroy();
    await until(() => a.server.smSessions.hibernating('alice', 'a.test').length === 1, 'session hibernating');
    await carol.xmpp.send(xml('message', { to: 'alice@a.test/mobile', type: 'chat' }, xml('body', {}, 'wake up')));
    const n = await nextNotification('alice-mobile');
    assert.deepEqual(n.fields['message-count'], ['1']);
    assert.deepEqual(n.fields['last-message-sender'], ['carol@a.test/desk']);
    assert.deepEqual(n.options.secret, ['m0bile']);
    for (const held of a.server.smSessions.hibernating('alice', 'a.test')) held.close('reset', 'test over');
  });

  it('a registration the app server refuses is removed', async () => {
    // alice/mobile is still registered (its session is gone now).
    assert.equal(a.server.store(PushStore).get('alice@a.test').length, 1);
    await carol.xmpp.send(xml('message', { to: 'alice@a.test', type: 'chat' }, xml('body', {}, 'to a dead device')));
    await nextNotification(
      'alice-mobile',
      (iq) =>
        `<iq type='error' id='${iq.attrs.id}' to='${iq.attrs.from}'><error type='cancel'>` +
        `<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
    );
    await until(() => a.server.store(PushStore).get('alice@a.test').length === 0, 'registration removed');
    assert.ok(a.logs.some((l) => /push registration removed after an error.*item-not-found/.test(l)));
    // And it stays removed across a restart of the store (storage has the change).
    const reloaded = new PushStore(a.server.storage);
    await reloaded.load();
    assert.equal(reloaded.get('alice@a.test').length, 0);
    await carol.xmpp.send(xml('message', { to: 'alice@a.test', type: 'chat' }, xml('body', {}, 'nobody hears')));
    await marker();
    assert.equal(unclaimed('alice-mobile').length, 0);
  });

  it('wait-type errors are tolerated up to push.maxTransientErrors in a row; push.includeBody sends the text', async () => {
    const cfg = a.server.config.push;
    cfg.includeBody = true;
    cfg.maxTransientErrors = 2;
    try {
      const alice = await connect({ port: a.port, domain: 'a.test', username: 'alice', password: 'pw', resource: 'tablet' });
      assert.equal((await alice.xmpp.iqCaller.request(enableIq('alice-tablet', 't'))).attrs.type, 'result');
      await alice.stop();
      const busy = (iq: Element) =>
        `<iq type='error' id='${iq.attrs.id}' to='${iq.attrs.from}'><error type='wait'>` +
        `<resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`;
      await carol.xmpp.send(xml('message', { to: 'alice@a.test', type: 'chat' }, xml('body', {}, 'with text')));
      const n = await nextNotification('alice-tablet', busy);
      assert.deepEqual(n.fields['last-message-body'], ['with text']);
      // One transient error: still registered, so the next message is announced too.
      await carol.xmpp.send(xml('message', { to: 'alice@a.test', type: 'chat' }, xml('body', {}, 'again')));
      const n2 = await nextNotification('alice-tablet', busy);
      assert.deepEqual(n2.fields['message-count'], ['2']);
      await until(() => a.server.store(PushStore).get('alice@a.test').length === 0, 'removed after two in a row');
    } finally {
      cfg.includeBody = false;
      cfg.maxTransientErrors = 3;
    }
  });

  it('bad enable requests get clear errors, and registrations go with the account', async () => {
    const erin = await connect({ port: a.port, domain: 'a.test', username: 'erin', password: 'pw', resource: 'phone' });
    const bad = await erin.xmpp.iqCaller
      .request(xml('iq', { type: 'set' }, xml('enable', { xmlns: PUSH, node: 'x' })))
      .then(() => 'result', (e: { condition?: string }) => e.condition);
    assert.equal(bad, 'jid-malformed');
    const self = await erin.xmpp.iqCaller
      .request(xml('iq', { type: 'set' }, xml('enable', { xmlns: PUSH, jid: 'erin@a.test', node: 'x' })))
      .then(() => 'result', (e: { condition?: string }) => e.condition);
    assert.equal(self, 'not-acceptable');
    assert.equal((await erin.xmpp.iqCaller.request(enableIq('erin-phone', 'e'))).attrs.type, 'result');
    await erin.stop();
    assert.equal(a.server.store(PushStore).get('erin@a.test').length, 1);
    await removeAccount(a.server, 'erin@a.test');
    assert.equal(a.server.store(PushStore).get('erin@a.test').length, 0);
    const reloaded = new PushStore(a.server.storage);
    await reloaded.load();
    assert.equal(reloaded.get('erin@a.test').length, 0, 'gone from storage too');
  });
});
