// XEP-0352 Client State Indication with slixmpp's own plugin: while the
// client says it is inactive it gets nothing but important stanzas; what
// was held (the latest presence per contact, the latest chat state) comes
// first when something important arrives or when it becomes active again.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import type { C2SSession } from '../../src/c2s/c2s-session.ts';
import { Jid } from '../../src/jid/jid.ts';
import { RosterStore } from '../../src/storage/roster.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { SlixClient } from '../helpers/slixmpp.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

/** Resolves once `cond()` holds (server state with no event to wait on), polling every 20 ms. */
async function until(cond: () => boolean, what: string, ms = 10000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('client state indication (XEP-0352)', () => {
  let ts: TestServer;
  let phone: SlixClient;
  let ann: TestClient;
  let ben: TestClient;
  let session: C2SSession;

  before(async () => {
    ts = await startServer();
    for (const u of ['phone', 'ann', 'ben']) await ts.addUser(u, 'pw');
    const rosters = ts.server.store(RosterStore);
    for (const friend of ['ann', 'ben']) {
      await rosters.setItem('phone@localhost', { jid: `${friend}@localhost`, subscription: 'both', groups: [] });
      await rosters.setItem(`${friend}@localhost`, { jid: 'phone@localhost', subscription: 'both', groups: [] });
    }
    ann = await connect({ port: ts.port, username: 'ann', password: 'pw', resource: 'a' });
    ben = await connect({ port: ts.port, username: 'ben', password: 'pw', resource: 'b' });
    await ann.send(xml('presence'));
    await ben.send(xml('presence'));
    phone = new SlixClient({ jid: 'phone@localhost/slix', password: 'pw', port: ts.port, plugins: ['xep_0352'] });
    await phone.started();
    phone.send('<presence/>');
    await phone.waitStanza((s) => s.name === 'presence' && s.attrs.from === 'ann@localhost/a', 'ann online');
    await phone.waitStanza((s) => s.name === 'presence' && s.attrs.from === 'ben@localhost/b', 'ben online');
    session = ts.server.sessions.get(Jid.parse('phone@localhost/slix')) as unknown as C2SSession;
  });
  after(async () => {
    await phone?.stop();
    await ann?.stop();
    await ben?.stop();
    await ts?.stop();
  });

  /** Stanzas the phone got so far, as slixmpp reported them, in order. */
  const seen = () => phone.events.filter((e) => e.event === 'stanza').map((e) => e.xml!);

  it('holds presence updates and chat states while inactive, and flushes them before an important message', async () => {
    await phone.call('xep_0352', 'send_inactive');
    await until(() => !session.csi.active, 'inactive');
    phone.events.length = 0;
    for (const show of ['away', 'dnd', 'xa']) await ann.send(xml('presence', {}, xml('show', {}, show)));
    // Presence goes out after a roster read: once ann sees her own last one, the phone's copy was sent too.
    await ann.waitFor((s) => s.is('presence') && s.attrs.from === 'ann@localhost/a' && s.getChildText('show') === 'xa', 'ann xa');
    await ben.send(xml('message', { to: 'phone@localhost', type: 'chat' }, xml('composing', { xmlns: 'http://jabber.org/protocol/chatstates' })));
    await ben.send(xml('message', { to: 'phone@localhost', type: 'chat' }, xml('paused', { xmlns: 'http://jabber.org/protocol/chatstates' })));
    // One presence (ann's latest) and one chat state (ben's latest) held.
    await until(() => session.csi.heldCount === 2, 'two held stanzas');
    assert.deepEqual(seen(), [], 'nothing reached the inactive client');

    await ben.send(xml('message', { to: 'phone@localhost', type: 'chat', id: 'important' }, xml('body', {}, 'call me')));
    await until(() => seen().some((x) => x.includes('call me')), 'the important message');
    const order = seen();
    assert.equal(order.length, 3, order.join('\n'));
    // What was held comes first, in the order it arrived at the server (presence
    // broadcasts take a roster read, so they may trail ben's chat states).
    const held = order.slice(0, 2);
    assert.equal(held.filter((x) => x.startsWith('<presence')).length, 1, 'only the latest presence');
    assert.match(held.find((x) => x.startsWith('<presence'))!, /<show>xa<\/show>/);
    assert.equal(held.filter((x) => /chatstates/.test(x)).length, 1, 'only the latest chat state');
    assert.match(held.find((x) => /chatstates/.test(x))!, /<paused/);
    assert.match(order[2]!, /call me/, 'the important message last');
  });

  it('lets an iq through at once (after what was held), and flushes the rest on <active/>', async () => {
    phone.events.length = 0;
    await ann.send(xml('presence', {}, xml('show', {}, 'chat'), xml('status', {}, 'free')));
    await until(() => session.csi.heldCount === 1, 'the presence held');
    // An iq is important: it goes through (after what was held).
    phone.send("<iq type='get' id='ping1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
    await until(() => seen().some((x) => x.includes("id=\"ping1\"") || x.includes("id='ping1'")), 'ping result');
    assert.match(seen()[0]!, /<status>free<\/status>/);
    assert.match(seen()[1]!, /ping1/);
    phone.events.length = 0;
    await ann.send(xml('presence', {}, xml('status', {}, 'back at my desk')));
    await until(() => session.csi.heldCount === 1, 'the next presence held');
    assert.deepEqual(seen(), []);
    await phone.call('xep_0352', 'send_active');
    await phone.waitStanza((s) => s.name === 'presence' && s.getChildText('status') === 'back at my desk', 'flushed on active');
    assert.ok(session.csi.active);
    // Active again: presence flows at once.
    await ben.send(xml('presence', {}, xml('status', {}, 'live')));
    await phone.waitStanza((s) => s.name === 'presence' && s.getChildText('status') === 'live', 'live presence');
  });
});
