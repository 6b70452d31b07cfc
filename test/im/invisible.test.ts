// XEP-0186 invisibility (and XEP-0018's broadcast <presence type='invisible'/>)
// between two real clients: the contact sees the invisible user offline,
// probes reveal nothing, and becoming visible broadcasts the presence.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import { RosterStore } from '../../src/storage/roster.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

const NS = 'urn:xmpp:invisible:0';
type Stanza = Awaited<ReturnType<TestClient['waitFor']>>;

describe('invisibility (XEP-0186)', () => {
  let ts: TestServer;
  let bob: TestClient;
  const clients: TestClient[] = [];
  let n = 0;

  const online = async (user: string, resource: string): Promise<TestClient> => {
    const c = await connect({ port: ts.port, username: user, password: 'pw', resource });
    clients.push(c);
    await c.xmpp.iqCaller.request(xml('iq', { type: 'get' }, xml('query', { xmlns: 'jabber:iq:roster' })));
    return c;
  };
  const fromAlice = (type?: string) => (s: Stanza) =>
    s.is('presence') && s.attrs.from?.startsWith('alice@localhost/') && s.attrs.type === type;
  /** Nothing from Alice reached Bob before a marker message sent now. */
  const bobSawNothingFromAlice = async (sender: TestClient) => {
    const id = `marker-${++n}`;
    await sender.send(xml('message', { to: 'bob@localhost', id, type: 'chat' }, xml('body', {}, 'marker')));
    await bob.waitFor((s) => s.attrs.id === id, 'marker');
    const presences = bob.received.filter((s) => s.is('presence') && s.attrs.from?.startsWith('alice@localhost/'));
    bob.received.length = 0;
    return presences.map(String);
  };

  before(async () => {
    ts = await startServer();
    for (const u of ['alice', 'bob']) await ts.addUser(u, 'pw');
    const store = ts.server.store(RosterStore);
    await store.setItem('alice@localhost', { jid: 'bob@localhost', subscription: 'both', groups: [] });
    await store.setItem('bob@localhost', { jid: 'alice@localhost', subscription: 'both', groups: [] });
    bob = await online('bob', 'home');
    await bob.send(xml('presence'));
  });
  after(async () => {
    for (const c of clients) await c.stop().catch(() => {});
    await ts?.stop();
  });

  it('is advertised on the account', async () => {
    const info = await bob.xmpp.iqCaller.request(
      xml('iq', { type: 'get', to: 'bob@localhost' }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })),
    );
    assert.ok(info.getChild('query').getChildren('feature').some((f: Stanza) => f.attrs.var === NS));
  });

  it('hides a resource that goes invisible before its first presence, until it becomes visible', async () => {
    const alice = await online('alice', 'a1');
    await alice.xmpp.iqCaller.request(xml('iq', { type: 'set' }, xml('invisible', { xmlns: NS })));
    await alice.send(xml('presence', {}, xml('show', {}, 'chat')));
    // Alice still sees her contacts and her own presence.
    await alice.waitFor((s) => s.is('presence') && s.attrs.from === 'bob@localhost/home', 'Bob seen by Alice');
    await alice.waitFor((s) => s.is('presence') && s.attrs.from === alice.jid, 'own presence');
    assert.deepEqual(await bobSawNothingFromAlice(alice), []);
    // A probe from Bob's server side learns nothing either.
    await bob.send(xml('presence', { to: 'alice@localhost', type: 'probe' }));
    await bob.waitFor((s) => s.is('presence') && s.attrs.from === 'alice@localhost' && s.attrs.type === 'unavailable', 'probe answered as offline');
    assert.equal(bob.received.some(fromAlice(undefined)), false);
    // Visible: Bob sees her at once.
    const seen = bob.waitFor(fromAlice(undefined), 'Alice available');
    await alice.xmpp.iqCaller.request(xml('iq', { type: 'set' }, xml('visible', { xmlns: NS })));
    assert.equal((await seen).getChildText('show'), 'chat');
    await alice.stop();
    await bob.waitFor(fromAlice('unavailable'), 'Alice gone');
    bob.received.length = 0;
  });

  it('takes a visible resource out of sight: <presence type=invisible/> reads as offline to contacts', async () => {
    const alice = await online('alice', 'a2');
    await alice.send(xml('presence'));
    await bob.waitFor(fromAlice(undefined), 'Alice available');
    const gone = bob.waitFor(fromAlice('unavailable'), 'Alice looks offline');
    await alice.send(xml('presence', { type: 'invisible' }));
    await gone;
    await alice.send(xml('presence', {}, xml('status', {}, 'still hiding')));
    assert.deepEqual((await bobSawNothingFromAlice(alice)).filter((p) => !p.includes('unavailable')), []);
    await alice.stop();
  });
});
