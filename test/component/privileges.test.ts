// XEP-0356 privileged entities: one component granted roster, message and
// presence permissions in the configuration, one granted nothing. The
// granted one gets its <privilege/> message at connect and may read and
// write a user's roster, send a message as the user and see the user's
// presence; the other is refused with forbidden and sees nothing. Then
// "roster" presence over federation: the presence of a user's contact on
// another server reaches the component.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import { ComponentService } from '../../src/component/component-service.ts';
import { S2SService } from '../../src/s2s/s2s-service.ts';
import { bodyOf, idOf, MAM, query as mamQuery } from '../helpers/mam.ts';
import { RawComponent } from '../helpers/raw-component.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

const PRIV = 'gw.localhost';
const PLAIN = 'plain.localhost';
const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
const PRIVILEGE = 'urn:xmpp:privilege:2';
const ROSTER = 'jabber:iq:roster';

describe('privileged components (XEP-0356)', () => {
  let ts: TestServer;
  let alice: TestClient;
  let bob: TestClient;
  let priv: RawComponent;
  let plain: RawComponent;

  const isError = (s: { name: string; attrs: Record<string, string> }, id: string) =>
    s.attrs.id === id && s.attrs.type === 'error';

  before(async () => {
    ts = await startServer({
      component: { port: 0 },
      components: {
        [PRIV]: { secret: 's1', privileges: { roster: 'both', message: 'outgoing', presence: 'managed_entity' } },
        [PLAIN]: { secret: 's2' },
      },
    });
    await ts.addUser('alice', 'pw');
    await ts.addUser('bob', 'pw');
    alice = await connect({ port: ts.port, username: 'alice', password: 'pw', resource: 'desk' });
    await alice.send(xml('iq', { type: 'get', id: 'r0' }, xml('query', { xmlns: ROSTER })));
    await alice.waitFor((s) => s.attrs.id === 'r0', 'roster');
    await alice.send(xml('presence', {}, xml('status', {}, 'before the components')));
    bob = await connect({ port: ts.port, username: 'bob', password: 'pw', resource: 'phone' });
    await bob.send(xml('presence'));
    const port = ts.server.service(ComponentService)!.port!;
    priv = await RawComponent.connect(port, PRIV, 's1');
    plain = await RawComponent.connect(port, PLAIN, 's2');
  });
  after(async () => {
    priv?.destroy();
    plain?.destroy();
    await bob?.stop();
    await alice?.stop();
    await ts?.stop();
  });

  it('announces the granted permissions at connect, and none to a component without any', async () => {
    const m = await priv.waitFor((s) => s.name === 'message' && !!s.getChild('privilege', PRIVILEGE), 'privilege message');
    assert.equal(m.attrs.from, 'localhost');
    assert.equal(m.attrs.to, PRIV);
    const perms = Object.fromEntries(
      m.getChild('privilege', PRIVILEGE)!.getChildren('perm').map((p) => [p.attrs.access, p.attrs.type]),
    );
    assert.deepEqual(perms, { roster: 'both', message: 'outgoing', presence: 'managed_entity' });
    // The other one is refused, and by then it would have had any privilege message.
    plain.send(`<iq type='get' id='p1' from='${PLAIN}' to='alice@localhost'><query xmlns='${ROSTER}'/></iq>`);
    const refused = await plain.waitFor((s) => isError(s, 'p1'), 'roster get refused');
    assert.ok(refused.getChild('error')!.getChild('forbidden', STANZAS));
    assert.equal(plain.stanzas.some((s) => s.getChild('privilege', PRIVILEGE)), false);
  });

  it('gives a presence-privileged component the presence users already had when it connected', async () => {
    const p = await priv.waitFor((s) => s.name === 'presence' && s.attrs.from === 'alice@localhost/desk', 'initial presence');
    assert.equal(p.getChildText('status'), 'before the components');
    assert.equal(plain.stanzas.some((s) => s.name === 'presence'), false);
  });

  it('lets the roster-privileged component write and read a user\'s roster, pushed to the user', async () => {
    const contact = `friend%x.test@${PRIV}`;
    const push = alice.waitFor(
      (s) => s.is('iq') && s.attrs.type === 'set' && s.getChild('query', ROSTER)?.getChild('item')?.attrs.jid === contact,
      'roster push',
    );
    priv.send(
      `<iq type='set' id='w1' from='${PRIV}' to='alice@localhost'><query xmlns='${ROSTER}'><item jid='${contact}' name='Friend' subscription='both'><group>MSN</group></item></query></iq>`,
    );
    const ok = await priv.waitFor((s) => s.attrs.id === 'w1', 'roster set result');
    assert.equal(ok.attrs.type, 'result');
    assert.equal(ok.attrs.from, 'alice@localhost');
    const item = ((await push) as Element).getChild('query', ROSTER).getChild('item');
    assert.equal(item.attrs.subscription, 'both');
    assert.equal(item.attrs.name, 'Friend');
    assert.equal(item.getChildText('group'), 'MSN');

    priv.send(`<iq type='get' id='g1' from='${PRIV}' to='alice@localhost'><query xmlns='${ROSTER}'/></iq>`);
    const got = await priv.waitFor((s) => s.attrs.id === 'g1', 'roster get result');
    const items = got.getChild('query', ROSTER)!.getChildren('item');
    assert.deepEqual(
      items.map((i) => [i.attrs.jid, i.attrs.subscription]),
      [[contact, 'both']],
    );

    const removed = alice.waitFor(
      (s) => s.is('iq') && s.getChild('query', ROSTER)?.getChild('item')?.attrs.subscription === 'remove',
      'removal push',
    );
    priv.send(
      `<iq type='set' id='w2' from='${PRIV}' to='alice@localhost'><query xmlns='${ROSTER}'><item jid='${contact}' subscription='remove'/></query></iq>`,
    );
    assert.equal((await priv.waitFor((s) => s.attrs.id === 'w2', 'removal result')).attrs.type, 'result');
    assert.equal(((await removed) as Element).getChild('query', ROSTER).getChild('item').attrs.jid, contact);
  });

  it('refuses roster writes to a component without the permission, and to accounts that do not exist', async () => {
    plain.send(
      `<iq type='set' id='p2' from='${PLAIN}' to='alice@localhost'><query xmlns='${ROSTER}'><item jid='x@${PLAIN}'/></query></iq>`,
    );
    assert.ok((await plain.waitFor((s) => isError(s, 'p2'), 'roster set refused')).getChild('error')!.getChild('forbidden', STANZAS));
    priv.send(`<iq type='get' id='g2' from='${PRIV}' to='nobody@localhost'><query xmlns='${ROSTER}'/></iq>`);
    const none = await priv.waitFor((s) => isError(s, 'g2'), 'no such account');
    assert.ok(none.getChild('error')!.getChild('service-unavailable', STANZAS));
  });

  it('sends a message on behalf of a user only with the message permission and a bare JID of this server', async () => {
    const forwarded = (from: string, id: string, body: string) =>
      `<message from='${PRIV}' to='localhost' id='${id}'><privilege xmlns='${PRIVILEGE}'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='${from}' to='bob@localhost' type='chat'><body>${body}</body></message></forwarded></privilege></message>`;
    priv.send(forwarded('alice@localhost', 'f1', 'sent for alice'));
    const m = await bob.waitFor((s) => s.is('message') && s.getChildText('body') === 'sent for alice', 'message as alice');
    assert.equal(m.attrs.from, 'alice@localhost');
    priv.send(forwarded('alice@localhost/desk', 'f2', 'with a resource'));
    assert.ok((await priv.waitFor((s) => isError(s, 'f2'), 'full JID refused')).getChild('error')!.getChild('forbidden', STANZAS));
    priv.send(forwarded('mallory@elsewhere.test', 'f3', 'foreign'));
    assert.ok((await priv.waitFor((s) => isError(s, 'f3'), 'foreign JID refused')).getChild('error')!.getChild('forbidden', STANZAS));
    plain.send(forwarded('alice@localhost', 'f4', 'not allowed').replaceAll(PRIV, PLAIN));
    assert.ok((await plain.waitFor((s) => isError(s, 'f4'), 'no permission')).getChild('error')!.getChild('forbidden', STANZAS));
    assert.equal(bob.received.some((s) => ['with a resource', 'foreign', 'not allowed'].includes(s.getChildText('body') ?? '')), false);
  });

  it('a message on behalf of a user takes the user\'s outgoing path: their carbons, their archive, their blocklist', async () => {
    const forwarded = (to: string, id: string, body: string) =>
      `<message from='${PRIV}' to='localhost' id='${id}'><privilege xmlns='${PRIVILEGE}'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='alice@localhost' to='${to}' type='chat' id='inner-${id}'><body>${body}</body></message></forwarded></privilege></message>`;
    await alice.send(xml('iq', { type: 'set', id: 'cb1' }, xml('enable', { xmlns: 'urn:xmpp:carbons:2' })));
    await alice.waitFor((s) => s.attrs.id === 'cb1', 'carbons on');
    priv.send(forwarded('bob@localhost', 'o1', 'on behalf, copied'));
    const delivered = await bob.waitFor((s) => s.is('message') && s.getChildText('body') === 'on behalf, copied', 'delivered');
    // The recipient gets no stanza id of the sender's archive.
    assert.equal(delivered.getChildren('stanza-id', 'urn:xmpp:sid:0').some((s: Element) => s.attrs.by === 'alice@localhost'), false);
    const carbon = await alice.waitFor((s) => !!s.getChild('sent', 'urn:xmpp:carbons:2'), 'sent carbon');
    const copy = carbon.getChild('sent', 'urn:xmpp:carbons:2')!.getChild('forwarded', 'urn:xmpp:forward:0')!.getChild('message')!;
    assert.equal(copy.getChildText('body'), 'on behalf, copied');
    assert.equal(copy.attrs.to, 'bob@localhost');
    // The carbon carries the archive id, and the archive has the message as sent by alice.
    const sid = copy.getChildren('stanza-id', 'urn:xmpp:sid:0').find((s: Element) => s.attrs.by === 'alice@localhost');
    assert.ok(sid, 'archive id on the carbon');
    const { results } = await mamQuery(alice, { with: 'bob@localhost' });
    const archived = results.find((r) => idOf(r) === sid.attrs.id);
    assert.ok(archived, 'in alice\'s archive');
    assert.equal(bodyOf(archived), 'on behalf, copied');
    assert.equal(archived.getChild('result', MAM)!.getChild('forwarded')!.getChild('message')!.attrs.from, 'alice@localhost');
    // A JID alice blocked gets nothing, and the component hears why.
    await alice.send(xml('iq', { type: 'set', id: 'bl1' }, xml('block', { xmlns: 'urn:xmpp:blocking' }, xml('item', { jid: 'carol@localhost' }))));
    await alice.waitFor((s) => s.attrs.id === 'bl1', 'blocked carol');
    priv.send(forwarded('carol@localhost', 'o2', 'to a blocked contact'));
    const refused = await priv.waitFor((s) => isError(s, 'o2'), 'blocked refused');
    assert.ok(refused.getChild('error')!.getChild('not-acceptable', STANZAS));
    assert.ok(refused.getChild('error')!.getChild('blocked', 'urn:xmpp:blocking:errors'));
  });

  it('forwards users\' presence changes to the presence-privileged component only', async () => {
    await alice.send(xml('presence', {}, xml('show', {}, 'dnd'), xml('status', {}, 'busy')));
    const p = await priv.waitFor((s) => s.name === 'presence' && s.getChildText('show') === 'dnd', 'presence change');
    assert.equal(p.attrs.from, 'alice@localhost/desk');
    assert.equal(p.attrs.to, PRIV);
    // A marker after the change: when it reaches the unprivileged component, no presence came before it.
    await alice.send(xml('message', { to: `marker@${PLAIN}`, id: 'mark' }, xml('body', {}, 'marker')));
    await plain.waitFor((s) => s.attrs.id === 'mark', 'marker');
    assert.equal(plain.stanzas.some((s) => s.name === 'presence'), false);
    // A dropped connection is an unavailable presence too.
    await bob.xmpp.disconnect();
    const gone = await priv.waitFor((s) => s.name === 'presence' && s.attrs.from === 'bob@localhost/phone' && s.attrs.type === 'unavailable', 'bob gone');
    assert.ok(gone);
  });
});

describe('roster presence privilege (XEP-0356 presence="roster") over federation', () => {
  let a: TestServer;
  let b: TestServer;
  let alice: TestClient;
  let romeo: TestClient;
  let gw: RawComponent | undefined;
  const GW = 'gw.a.test';

  const subscribed = (c: TestClient, jid: string) =>
    c.waitFor(
      (s) =>
        s.is('iq') &&
        s.attrs.type === 'set' &&
        s.getChild('query', ROSTER)?.getChild('item')?.attrs.jid === jid &&
        s.getChild('query', ROSTER)?.getChild('item')?.attrs.subscription === 'both',
      `${jid} subscribed both ways`,
      20000,
    );

  before(async () => {
    a = await startServer({
      domain: 'a.test',
      s2s: { port: 0 },
      component: { port: 0 },
      components: { [GW]: { secret: 's', privileges: { roster: 'get', presence: 'roster' } } },
    });
    b = await startServer({ domain: 'b.test', s2s: { port: 0 } });
    a.config.s2s.routes['b.test'] = `127.0.0.1:${b.server.service(S2SService)!.ports.starttls}`;
    b.config.s2s.routes['a.test'] = `127.0.0.1:${a.server.service(S2SService)!.ports.starttls}`;
    await a.addUser('alice', 'pw');
    await b.addUser('romeo', 'pw');
    alice = await connect({ port: a.port, domain: 'a.test', username: 'alice', password: 'pw', resource: 'home' });
    romeo = await connect({ port: b.port, domain: 'b.test', username: 'romeo', password: 'pw', resource: 'garden' });
    for (const c of [alice, romeo]) {
      await c.send(xml('iq', { type: 'get', id: 'r' }, xml('query', { xmlns: ROSTER })));
      await c.waitFor((s) => s.attrs.id === 'r', 'roster');
      await c.send(xml('presence'));
    }
    // alice and romeo become contacts both ways, over s2s.
    await alice.send(xml('presence', { to: 'romeo@b.test', type: 'subscribe' }));
    await romeo.waitFor((s) => s.is('presence') && s.attrs.type === 'subscribe', 'request at romeo', 20000);
    await romeo.send(xml('presence', { to: 'alice@a.test', type: 'subscribed' }));
    await romeo.send(xml('presence', { to: 'alice@a.test', type: 'subscribe' }));
    await alice.waitFor((s) => s.is('presence') && s.attrs.type === 'subscribe', 'request at alice', 20000);
    await alice.send(xml('presence', { to: 'romeo@b.test', type: 'subscribed' }));
    await subscribed(alice, 'romeo@b.test');
    await subscribed(romeo, 'alice@a.test');
  });
  after(async () => {
    gw?.destroy();
    await romeo?.stop();
    await alice?.stop();
    await b?.stop();
    await a?.stop();
  });

  it('probes the contacts of online users when the component connects, and forwards their changes', async () => {
    gw = await RawComponent.connect(a.server.service(ComponentService)!.port!, GW, 's');
    // Rule 1: romeo was online before the component came; the server asks and forwards the answer.
    const first = await gw.waitFor((s) => s.name === 'presence' && s.attrs.from === 'romeo@b.test/garden', 'romeo\'s current presence', 20000);
    assert.equal(first.attrs.to, GW);
    await romeo.send(xml('presence', {}, xml('show', {}, 'xa'), xml('status', {}, 'in the orchard')));
    const change = await gw.waitFor(
      (s) => s.name === 'presence' && s.attrs.from === 'romeo@b.test/garden' && s.getChildText('show') === 'xa',
      'romeo\'s change',
      20000,
    );
    assert.equal(change.getChildText('status'), 'in the orchard');
    await romeo.xmpp.disconnect();
    await gw.waitFor(
      (s) => s.name === 'presence' && s.attrs.from === 'romeo@b.test/garden' && s.attrs.type === 'unavailable',
      'romeo gone',
      20000,
    );
  });
});
