// XEP-0030 service discovery of the server and of accounts, and the
// server's XEP-0115 caps stream feature, with real clients.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import { capsVer } from '../../src/modules/disco.ts';
import { RosterStore } from '../../src/storage/roster.ts';
import { securedStream, } from '../helpers/raw-socket.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { SlixClient } from '../helpers/slixmpp.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

const INFO = 'http://jabber.org/protocol/disco#info';
const ITEMS = 'http://jabber.org/protocol/disco#items';

function disco(c: TestClient, ns: string, to?: string, node?: string): Promise<Element> {
  return c.xmpp.iqCaller.request(xml('iq', { type: 'get', to }, xml('query', { xmlns: ns, node })));
}

async function condition(p: Promise<unknown>): Promise<string> {
  const err = (await p.then(
    () => assert.fail('expected an error'),
    (e: unknown) => e,
  )) as { condition?: string };
  return err.condition ?? String(err);
}

const features = (q: Element) => q.getChildren('feature').map((f: Element) => f.attrs.var as string);

describe('service discovery', () => {
  let ts: TestServer;
  let bob: TestClient;

  before(async () => {
    ts = await startServer({ msn: { enabled: true } });
    await ts.addUser('alice', 'pw');
    await ts.addUser('bob', 'pw');
    bob = await connect({ port: ts.port, username: 'bob', password: 'pw' });
  });
  after(async () => {
    await bob?.stop();
    await ts.stop();
  });

  it('describes the server: server/im and every feature its modules declared', async () => {
    const q = (await disco(bob, INFO, 'localhost')).getChild('query', INFO)!;
    const identity = q.getChild('identity')!;
    assert.deepEqual([identity.attrs.category, identity.attrs.type], ['server', 'im']);
    const declared = [...ts.server.hosts.get('localhost')!.features].sort();
    assert.deepEqual(features(q).sort(), declared);
    for (const ns of [INFO, ITEMS, 'vcard-temp', 'urn:xmpp:ping', 'jabber:iq:version', 'urn:xmpp:time']) {
      assert.ok(features(q).includes(ns), ns);
    }
  });

  it('lists the MSN transport and the MUC service among the server items (slixmpp)', async () => {
    const slix = new SlixClient({ jid: 'alice@localhost/slix', password: 'pw', port: ts.port });
    try {
      await slix.started();
      slix.send(`<iq type='get' id='items1' to='localhost'><query xmlns='${ITEMS}'/></iq>`);
      const reply = await slix.waitStanza((s) => s.is('iq') && s.attrs.id === 'items1', 'disco#items');
      assert.equal(reply.attrs.type, 'result');
      const jids = reply
        .getChild('query')!
        .getChildren('item')
        .map((i) => i.attrs.jid);
      assert.deepEqual(jids.sort(), ['conference.localhost', 'msn.localhost']);
    } finally {
      await slix.stop();
    }
  });

  it('advertises caps after TLS and answers the node#ver query with the same info', async () => {
    const { s, features: streamFeatures } = await securedStream(ts.port);
    try {
      const c = streamFeatures.match(/<c xmlns="http:\/\/jabber.org\/protocol\/caps"[^>]*>/)?.[0];
      assert.ok(c, streamFeatures);
      const node = c.match(/node="([^"]+)"/)![1]!;
      const ver = c.match(/ver="([^"]+)"/)![1]!;
      assert.match(c, /hash="sha-1"/);

      const reply = await disco(bob, INFO, 'localhost', `${node}#${ver}`);
      const q = reply.getChild('query', INFO)!;
      assert.equal(q.attrs.node, `${node}#${ver}`);
      // Recompute the hash from what the server answered (XEP-0115 §5.1).
      const ids = q
        .getChildren('identity')
        .map((i: Element) => `${i.attrs.category}/${i.attrs.type}//${i.attrs.name ?? ''}<`);
      const input =
        ids.sort().join('') +
        features(q)
          .sort()
          .map((f) => `${f}<`)
          .join('');
      assert.equal(createHash('sha1').update(input).digest('base64'), ver);

      assert.equal(await condition(disco(bob, INFO, 'localhost', `${node}#bogus`)), 'item-not-found');
    } finally {
      s.destroy();
    }
  });

  it('computes the XEP-0115 example verification string', () => {
    const ver = capsVer(
      [{ category: 'client', type: 'pc', name: 'Exodus 0.9.1' }],
      [
        'http://jabber.org/protocol/disco#info',
        'http://jabber.org/protocol/disco#items',
        'http://jabber.org/protocol/muc',
        'http://jabber.org/protocol/caps',
      ],
    );
    assert.equal(ver, 'QgayPKawpkPSDYmwT/WM94uAlu0=');
  });

  it('describes an account to its owner with account/registered', async () => {
    for (const to of [undefined, 'bob@localhost']) {
      const reply = await disco(bob, INFO, to);
      const identity = reply.getChild('query', INFO)!.getChild('identity')!;
      assert.deepEqual([identity.attrs.category, identity.attrs.type], ['account', 'registered']);
    }
    const items = await disco(bob, ITEMS, 'bob@localhost');
    assert.ok(items.getChild('query', ITEMS));
  });

  it('hides an account from strangers and shows it to subscribed contacts', async () => {
    assert.equal(await condition(disco(bob, INFO, 'alice@localhost')), 'service-unavailable');
    assert.equal(await condition(disco(bob, INFO, 'nobody@localhost')), 'service-unavailable');
    await ts.server
      .store(RosterStore)
      .setItem('alice@localhost', { jid: 'bob@localhost', subscription: 'from', groups: [] });
    const reply = await disco(bob, INFO, 'alice@localhost');
    assert.equal(reply.attrs.from, 'alice@localhost');
    assert.equal(reply.getChild('query', INFO)!.getChild('identity')!.attrs.type, 'registered');
  });
});
