// Small server iqs with real clients: XEP-0199 ping, XEP-0092 version,
// XEP-0202 time and XEP-0012 last activity (uptime and users' logout time,
// only for those allowed to see the user's presence).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import { LastActivityStore } from '../../src/storage/last-activity.ts';
import { RosterStore } from '../../src/storage/roster.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { SlixClient } from '../helpers/slixmpp.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

function get(c: TestClient, to: string | undefined, name: string, xmlns: string): Promise<Element> {
  return c.xmpp.iqCaller.request(xml('iq', { type: 'get', to }, xml(name, { xmlns })));
}

async function condition(p: Promise<unknown>): Promise<string> {
  const err = (await p.then(
    () => assert.fail('expected an error'),
    (e: unknown) => e,
  )) as { condition?: string };
  return err.condition ?? String(err);
}

describe('ping, version, time, last', () => {
  let ts: TestServer;
  let bob: TestClient;

  before(async () => {
    ts = await startServer();
    for (const u of ['alice', 'bob', 'carol']) await ts.addUser(u, 'pw');
    bob = await connect({ port: ts.port, username: 'bob', password: 'pw' });
  });
  after(async () => {
    await bob?.stop();
    await ts.stop();
  });

  it('answers pings to the server and to the own bare JID (both clients)', async () => {
    const res = await get(bob, 'localhost', 'ping', 'urn:xmpp:ping');
    assert.equal(res.attrs.type, 'result');
    assert.equal(res.attrs.from, 'localhost');
    assert.equal((await get(bob, 'bob@localhost', 'ping', 'urn:xmpp:ping')).attrs.type, 'result');

    const slix = new SlixClient({ jid: 'carol@localhost/slix', password: 'pw', port: ts.port });
    try {
      await slix.started();
      slix.send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>");
      slix.send("<iq type='get' id='p2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
      for (const id of ['p1', 'p2']) {
        const r = await slix.waitStanza((s) => s.is('iq') && s.attrs.id === id, id);
        assert.equal(r.attrs.type, 'result');
      }
    } finally {
      await slix.stop();
    }
  });

  it('tells its name and the package version', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    const q = (await get(bob, 'localhost', 'query', 'jabber:iq:version')).getChild('query')!;
    assert.equal(q.getChildText('name'), 'jabberfly');
    assert.equal(q.getChildText('version'), pkg.version);
  });

  it('tells the time in UTC', async () => {
    const t = (await get(bob, 'localhost', 'time', 'urn:xmpp:time')).getChild('time', 'urn:xmpp:time')!;
    assert.equal(t.getChildText('tzo'), '+00:00');
    const utc = t.getChildText('utc')!;
    assert.match(utc, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.ok(Math.abs(Date.parse(utc) - Date.now()) < 5000, utc);
  });

  it('tells the server uptime', async () => {
    const q = (await get(bob, 'localhost', 'query', 'jabber:iq:last')).getChild('query')!;
    const seconds = Number(q.attrs.seconds);
    assert.ok(Number.isInteger(seconds) && seconds >= 0);
    assert.ok(seconds <= (Date.now() - ts.server.startedAt) / 1000 + 1);
  });

  it("gives a user's logout time and status to subscribed contacts only", async () => {
    await ts.server
      .store(RosterStore)
      .setItem('alice@localhost', { jid: 'bob@localhost', subscription: 'both', groups: [] });
    await ts.server
      .store(RosterStore)
      .setItem('alice@localhost', { jid: 'carol@localhost', subscription: 'to', groups: [] });
    const carol = await connect({ port: ts.port, username: 'carol', password: 'pw' });
    try {
      assert.equal(await condition(get(bob, 'alice@localhost', 'query', 'jabber:iq:last')), 'item-not-found');

      const alice = await connect({ port: ts.port, username: 'alice', password: 'pw' });
      await alice.send(xml('presence'));
      // The ping's answer comes after the presence was processed.
      await get(alice, 'localhost', 'ping', 'urn:xmpp:ping');
      const online = await get(bob, 'alice@localhost', 'query', 'jabber:iq:last');
      assert.equal(online.getChild('query')!.attrs.seconds, '0');

      const store = ts.server.store(LastActivityStore);
      const recorded = new Promise<void>((resolve) => {
        const set = store.set.bind(store);
        store.set = (jid, activity) => set(jid, activity).finally(resolve);
      });
      await alice.send(xml('presence', { type: 'unavailable' }, xml('status', {}, 'Gone fishing')));
      await alice.stop();
      await recorded;

      const q = (await get(bob, 'alice@localhost', 'query', 'jabber:iq:last')).getChild('query')!;
      assert.ok(Number(q.attrs.seconds) >= 0 && Number(q.attrs.seconds) < 5, q.attrs.seconds);
      assert.equal(q.getText(), 'Gone fishing');

      assert.equal(await condition(get(carol, 'alice@localhost', 'query', 'jabber:iq:last')), 'forbidden');
      assert.equal(
        await condition(get(bob, 'nobody@localhost', 'query', 'jabber:iq:last')),
        'service-unavailable',
      );
    } finally {
      await carol.stop();
    }
  });
});
