// A transport whose msn.server is unset (the default: Microsoft's servers are
// gone) says so where users look: its service-discovery name, its
// registration form, and the refusal of a registration, instead of trying
// to resolve a dead host name.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import { startServer, type TestServer } from '../helpers/server.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

describe('MSN transport without msn.server', () => {
  let ts: TestServer;
  let alice: TestClient;

  before(async () => {
    ts = await startServer({ msn: { enabled: true } });
    await ts.addUser('alice', 'pw');
    alice = await connect({ port: ts.port, username: 'alice', password: 'pw' });
  });
  after(async () => {
    await alice?.stop();
    await ts.stop();
  });

  it('names itself "not configured" in service discovery', async () => {
    const info = await alice.xmpp.iqCaller.request(
      xml('iq', { type: 'get', to: 'msn.localhost' }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })),
    );
    const identity = info.getChild('query')!.getChild('identity')!;
    assert.equal(identity.attrs.category, 'gateway');
    assert.match(identity.attrs.name, /not configured: msn\.server is unset/);
  });

  it('tells the user in the registration form, and refuses registration with that text', async () => {
    const form = await alice.xmpp.iqCaller.request(
      xml('iq', { type: 'get', to: 'msn.localhost' }, xml('query', { xmlns: 'jabber:iq:register' })),
    );
    assert.match(form.getChild('query')!.getChildText('instructions')!, /administrator must set msn\.server/);
    const err = (await alice.xmpp.iqCaller
      .request(
        xml(
          'iq',
          { type: 'set', to: 'msn.localhost' },
          xml('query', { xmlns: 'jabber:iq:register' }, xml('username', {}, 'me@hotmail.com'), xml('password', {}, 'x')),
        ),
      )
      .then(
        () => assert.fail('registration should be refused'),
        (e: unknown) => e,
      )) as { condition: string; element: { getChildText(n: string, ns: string): string } };
    assert.equal(err.condition, 'service-unavailable');
    assert.match(err.element.getChildText('text', 'urn:ietf:params:xml:ns:xmpp-stanzas'), /must set msn\.server/);
  });
});
