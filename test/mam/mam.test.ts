// Message archives (XEP-0313) with stanza ids (XEP-0359) and preferences
// (XEP-0441), against real clients: slixmpp's own MAM iterator and
// preferences plugin, and @xmpp/client for everything sent raw.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import { parse } from '../../src/xml/element.ts';
import { bodyOf, idOf, iq, MAM, query } from '../helpers/mam.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { SlixClient } from '../helpers/slixmpp.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

const SID = 'urn:xmpp:sid:0';
const CARBONS = 'urn:xmpp:carbons:2';

const stanzaIds = (m: Element) => m.getChildren('stanza-id', SID) as Element[];
const errorOf = (reply: Element) =>
  reply.getChild('error')?.children.find((c: Element | string) => typeof c !== 'string' && c.attrs.xmlns === 'urn:ietf:params:xml:ns:xmpp-stanzas')?.name;

describe('message archive (XEP-0313)', () => {
  let ts: TestServer;
  let alice: TestClient;
  let bob: TestClient;

  before(async () => {
    ts = await startServer();
    for (const u of ['alice', 'bob', 'carol', 'dave', 'erin']) await ts.addUser(u, 'pw');
    alice = await connect({ port: ts.port, username: 'alice', password: 'pw', resource: 'desk' });
    bob = await connect({ port: ts.port, username: 'bob', password: 'pw', resource: 'desk' });
    await alice.send(xml('presence'));
    await bob.send(xml('presence'));
  });
  after(async () => {
    await alice?.stop();
    await bob?.stop();
    await ts?.stop();
  });

  it('advertises mam:2, #extended and stanza ids on the account', async () => {
    const info = await iq(alice, 'get', xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' }), 'alice@localhost');
    const features = info.getChild('query').getChildren('feature').map((f: Element) => f.attrs.var);
    for (const f of [MAM, `${MAM}#extended`, SID]) assert.ok(features.includes(f), f);
    const form = await iq(alice, 'get', xml('query', { xmlns: MAM }));
    const vars = form.getChild('query', MAM).getChild('x').getChildren('field').map((f: Element) => f.attrs.var);
    assert.deepEqual(vars, ['FORM_TYPE', 'with', 'start', 'end', 'before-id', 'after-id', 'ids']);
  });

  it('lets slixmpp page through 3 pages: every body once, in order', async () => {
    const carol = new SlixClient({ jid: 'carol@localhost/slix', password: 'pw', port: ts.port, plugins: ['xep_0313'] });
    try {
      await carol.started();
      carol.send('<presence/>');
      // Wait until carol is available, so the messages reach her live.
      await carol.waitStanza((s) => s.name === 'presence' && s.attrs.from === carol.jid, 'own presence');
      for (let i = 1; i <= 25; i++) {
        await alice.send(xml('message', { to: 'carol@localhost', type: 'chat', id: `p${i}` }, xml('body', {}, `page test ${i}`)));
      }
      await carol.waitStanza((s) => s.getChildText('body') === 'page test 25', 'last live message');
      const paged = await carol.op('mam_pages', { max: 10, with: 'alice@localhost' });
      assert.ok(paged.ok, `slixmpp MAM failed: ${paged.condition} ${paged.text}`);
      const raw = paged.value!.pages as Array<{ results: string[]; fin: string }>;
      const pages = raw.map((p) =>
        p.results.map((x) => parse(x).getChild('result', MAM)!.getChild('forwarded')!.getChild('message')!.getChildText('body')!),
      );
      const fins = raw.map((p) => p.fin);
      assert.equal(pages.length, 3, 'three pages of at most 10');
      assert.deepEqual(
        pages.map((p) => p.length),
        [10, 10, 5],
      );
      assert.deepEqual(
        pages.flat(),
        Array.from({ length: 25 }, (_, i) => `page test ${i + 1}`),
      );
      assert.ok(!fins[0]!.includes("complete='true'") && !fins[0]!.includes('complete="true"'), 'first page is not the last');
      assert.match(fins[2]!, /complete=["']true["']/);
    } finally {
      await carol.stop();
    }
  });

  it('stamps one stanza-id shared by the delivered message, carbons and the archive', async () => {
    // A second resource of each, with carbons; bob's phone is not a delivery target (priority -1).
    const alicePhone = await connect({ port: ts.port, username: 'alice', password: 'pw', resource: 'phone' });
    const bobPhone = await connect({ port: ts.port, username: 'bob', password: 'pw', resource: 'phone' });
    try {
      for (const c of [alicePhone, bobPhone]) await iq(c, 'set', xml('enable', { xmlns: CARBONS }));
      await bobPhone.send(xml('presence', {}, xml('priority', {}, '-1')));
      await alice.send(
        xml(
          'message',
          { to: 'bob@localhost', type: 'chat', id: 'sid1' },
          xml('body', {}, 'one id for all'),
          xml('origin-id', { xmlns: SID, id: 'origin-1' }),
          // Forged: a sender may not choose bob's ids.
          xml('stanza-id', { xmlns: SID, by: 'bob@localhost', id: 'forged' }),
        ),
      );
      const delivered = await bob.waitFor((s) => s.is('message') && s.attrs.id === 'sid1', 'delivered message');
      const ids = stanzaIds(delivered);
      assert.equal(ids.length, 1, `one stanza-id, not the forged one: ${delivered.toString()}`);
      assert.equal(ids[0]!.attrs.by, 'bob@localhost');
      assert.notEqual(ids[0]!.attrs.id, 'forged');
      assert.equal(delivered.getChild('origin-id', SID)?.attrs.id, 'origin-1', 'origin-id kept');
      const bobId = ids[0]!.attrs.id as string;

      const received = await bobPhone.waitFor((s) => s.is('message') && s.getChild('received', CARBONS) !== undefined, 'received carbon');
      const copy = received.getChild('received', CARBONS).getChild('forwarded').getChild('message');
      assert.equal(stanzaIds(copy)[0]?.attrs.id, bobId, 'the received carbon has the same id');

      const sent = await alicePhone.waitFor((s) => s.is('message') && s.getChild('sent', CARBONS) !== undefined, 'sent carbon');
      const sentCopy = sent.getChild('sent', CARBONS).getChild('forwarded').getChild('message');
      // The copy is what alice sent (her forged element included) plus her own id.
      const aliceIds = stanzaIds(sentCopy).filter((i) => i.attrs.by === 'alice@localhost');
      assert.equal(aliceIds.length, 1);
      assert.equal(stanzaIds(delivered).filter((i) => i.attrs.by === 'alice@localhost').length, 0, "the sender's id stays home");

      const inBob = await query(bob, { ids: bobId });
      assert.equal(inBob.results.length, 1);
      assert.equal(idOf(inBob.results[0]!), bobId);
      assert.equal(bodyOf(inBob.results[0]!), 'one id for all');
      const archived = inBob.results[0]!.getChild('result', MAM).getChild('forwarded').getChild('message');
      assert.equal(archived.getChild('origin-id', SID)?.attrs.id, 'origin-1');
      assert.ok(inBob.results[0]!.getChild('result', MAM).getChild('forwarded').getChild('delay', 'urn:xmpp:delay'));

      const inAlice = await query(alice, { ids: aliceIds[0]!.attrs.id });
      assert.equal(bodyOf(inAlice.results[0]!), 'one id for all', "kept in the sender's archive too");
    } finally {
      await alicePhone.stop();
      await bobPhone.stop();
    }
  });

  it('archives what a conversation needs and nothing else', async () => {
    const sends = [
      xml('message', { to: 'bob@localhost', type: 'chat', id: 'k1' }, xml('body', {}, 'kept body')),
      xml('message', { to: 'bob@localhost', type: 'chat', id: 'k2' }, xml('active', { xmlns: 'http://jabber.org/protocol/chatstates' })),
      xml('message', { to: 'bob@localhost', type: 'chat', id: 'k3' }, xml('body', {}, 'hinted'), xml('no-store', { xmlns: 'urn:xmpp:hints' })),
      xml('message', { to: 'bob@localhost', type: 'headline', id: 'k4' }, xml('body', {}, 'headline')),
      xml('message', { to: 'bob@localhost', type: 'chat', id: 'k5' }, xml('encrypted', { xmlns: 'eu.siacs.conversations.axolotl' }, xml('payload', {}, 'AAAA'))),
      xml('message', { to: 'bob@localhost', type: 'chat', id: 'k6' }, xml('body', {}, 'last one')),
    ];
    for (const m of sends) await alice.send(m);
    const last = await bob.waitFor((s) => s.attrs.id === 'k6', 'last message');
    assert.equal(stanzaIds(last).length, 1);
    const headline = await bob.waitFor((s) => s.attrs.id === 'k4', 'headline');
    assert.equal(stanzaIds(headline).length, 0, 'headlines are not archived, so carry no id');
    const { results } = await query(bob, { with: 'alice@localhost' }, { before: '', max: 3 });
    const kept = results.map((r) => r.getChild('result', MAM).getChild('forwarded').getChild('message').attrs.id);
    assert.deepEqual(kept, ['k1', 'k5', 'k6']);
  });

  it('answers #extended queries: before-id/after-id, ids, flip-page, last page, time range, full JID', async () => {
    const erin = await connect({ port: ts.port, username: 'erin', password: 'pw', resource: 'r' });
    try {
      await erin.send(xml('presence'));
      for (let i = 0; i < 8; i++) {
        await alice.send(xml('message', { to: 'erin@localhost/r', type: 'chat', id: `e${i}` }, xml('body', {}, `e${i}`)));
      }
      // Two senders on two connections: bob's message is only later once alice's last one arrived.
      await erin.waitFor((s) => s.attrs.id === 'e7', 'alice last message');
      await bob.send(xml('message', { to: 'erin@localhost', type: 'chat', id: 'fromBob' }, xml('body', {}, 'from bob')));
      await erin.waitFor((s) => s.attrs.id === 'fromBob', 'bob message');
      const everything = await query(erin);
      assert.deepEqual(everything.results.map(bodyOf), ['e0', 'e1', 'e2', 'e3', 'e4', 'e5', 'e6', 'e7', 'from bob']);
      assert.equal(everything.fin?.attrs.complete, 'true');
      const ids = everything.results.map(idOf);
      assert.equal(everything.fin?.getChild('set').getChildText('first'), ids[0]);
      assert.equal(everything.fin?.getChild('set').getChildText('last'), ids[8]);

      const between = await query(erin, { 'after-id': ids[1]!, 'before-id': ids[5]! });
      assert.deepEqual(between.results.map(bodyOf), ['e2', 'e3', 'e4']);

      const named = await query(erin, { ids: [ids[6]!, ids[2]!] });
      assert.deepEqual(named.results.map(bodyOf), ['e2', 'e6'], 'in archive order');

      const lastPage = await query(erin, {}, { before: '', max: 2 });
      assert.deepEqual(lastPage.results.map(bodyOf), ['e7', 'from bob']);
      assert.equal(lastPage.fin?.attrs.complete, undefined);
      const previous = await query(erin, {}, { before: ids[7]!, max: 2 });
      assert.deepEqual(previous.results.map(bodyOf), ['e5', 'e6']);
      const firstPage = await query(erin, {}, { before: ids[2]!, max: 5 });
      assert.deepEqual(firstPage.results.map(bodyOf), ['e0', 'e1']);
      assert.equal(firstPage.fin?.attrs.complete, 'true', 'paging backwards reached the start');

      const flipped = await query(erin, {}, { max: 3 }, [xml('flip-page')]);
      assert.deepEqual(flipped.results.map(bodyOf), ['e2', 'e1', 'e0']);
      assert.equal(flipped.fin?.getChild('set').getChildText('first'), ids[0], 'first/last keep their meaning');

      const withBob = await query(erin, { with: 'bob@localhost' });
      assert.deepEqual(withBob.results.map(bodyOf), ['from bob']);
      const withFull = await query(erin, { with: 'alice@localhost/desk' }, { max: 2 });
      assert.deepEqual(withFull.results.map(bodyOf), ['e0', 'e1']);
      const withOtherResource = await query(erin, { with: 'alice@localhost/elsewhere' });
      assert.deepEqual(withOtherResource.results, []);
      assert.equal(withOtherResource.fin?.attrs.complete, 'true');

      // Time: everything up to now, nothing from the future.
      const future = new Date(Date.now() + 60_000).toISOString();
      assert.equal((await query(erin, { start: future })).results.length, 0);
      assert.equal((await query(erin, { end: future, with: 'bob@localhost' })).results.length, 1);

      const meta = await iq(erin, 'get', xml('metadata', { xmlns: MAM }));
      const md = meta.getChild('metadata', MAM);
      assert.equal(md.getChild('start').attrs.id, ids[0]);
      assert.equal(md.getChild('end').attrs.id, ids[8]);
      assert.ok(!Number.isNaN(Date.parse(md.getChild('end').attrs.timestamp)));
    } finally {
      await erin.stop();
    }
  });

  it('refuses bad queries with the right conditions', async () => {
    assert.equal(errorOf((await query(alice, {}, { after: 'nosuchid00000000' })).reply), 'item-not-found');
    assert.equal(errorOf((await query(alice, { ids: 'nosuchid' })).reply), 'item-not-found');
    assert.equal(errorOf((await query(alice, { 'not-a-field': 'x' })).reply), 'feature-not-implemented');
    assert.equal(errorOf((await query(alice, { start: 'yesterday' })).reply), 'bad-request');
    assert.equal(errorOf((await query(alice, { with: 'not a jid@@' })).reply), 'jid-malformed');
    const other = await iq(alice, 'set', xml('query', { xmlns: MAM }), 'bob@localhost');
    assert.equal(errorOf(other), 'forbidden', "another user's archive is private");
    const manyIds = Array.from({ length: ts.config.mam.maxPageSize + 1 }, (_, i) => `id${i}`);
    assert.equal(errorOf((await query(alice, { ids: manyIds })).reply), 'policy-violation');
    const big = await query(alice, {}, { max: 1_000_000 });
    assert.ok(big.results.length <= ts.config.mam.maxPageSize, 'the page size is capped');
  });

  it('keeps a contact out with preferences set by slixmpp (never), and follows the roster default', async () => {
    const dave = new SlixClient({ jid: 'dave@localhost/slix', password: 'pw', port: ts.port, plugins: ['xep_0313', 'xep_0441'] });
    const daveWatch = await connect({ port: ts.port, username: 'dave', password: 'pw', resource: 'watch' });
    try {
      await dave.started();
      await daveWatch.send(xml('presence'));
      const set = await dave.call('xep_0441', 'set_preferences', [], { default: 'always', never: [{ $jid: 'bob@localhost' }] });
      const applied = parse(set).getChild('prefs', MAM)!;
      assert.equal(applied.attrs.default, 'always');
      assert.deepEqual(applied.getChild('never')!.getChildren('jid').map((j) => j.getText()), ['bob@localhost']);

      await bob.send(xml('message', { to: 'dave@localhost', type: 'chat', id: 'n1' }, xml('body', {}, 'from bob, never kept')));
      await alice.send(xml('message', { to: 'dave@localhost', type: 'chat', id: 'n2' }, xml('body', {}, 'from alice, kept')));
      const fromBob = await daveWatch.waitFor((s) => s.attrs.id === 'n1', 'bob message');
      assert.equal(stanzaIds(fromBob).length, 0, 'not archived, so no id');
      await daveWatch.waitFor((s) => s.attrs.id === 'n2', 'alice message');
      // bob's own archive still has what he sent: preferences are per user.
      assert.equal((await query(bob, { with: 'dave@localhost' })).results.map(bodyOf).includes('from bob, never kept'), true);
      const got = await iq(daveWatch, 'get', xml('prefs', { xmlns: MAM }));
      assert.equal(got.getChild('prefs', MAM).getChild('never').getChildText('jid'), 'bob@localhost');

      // default=roster: alice is in dave's roster, erin is not.
      await iq(daveWatch, 'set', xml('query', { xmlns: 'jabber:iq:roster' }, xml('item', { jid: 'alice@localhost' })));
      const roster = parse(await dave.call('xep_0441', 'set_preferences', [], { default: 'roster' })).getChild('prefs', MAM)!;
      assert.equal(roster.attrs.default, 'roster');
      const erin = await connect({ port: ts.port, username: 'erin', password: 'pw', resource: 'r2' });
      await erin.send(xml('message', { to: 'dave@localhost', type: 'chat', id: 'r1' }, xml('body', {}, 'erin, not in roster')));
      await alice.send(xml('message', { to: 'dave@localhost', type: 'chat', id: 'r2' }, xml('body', {}, 'alice, in roster')));
      await erin.stop();
      await daveWatch.waitFor((s) => s.attrs.id === 'r2', 'alice message');

      const { results } = await query(daveWatch);
      assert.deepEqual(results.map(bodyOf), ['from alice, kept', 'alice, in roster']);
    } finally {
      await dave.stop();
      await daveWatch.stop();
    }
  });

  it('archives messages for a user who is offline, with the id on the offline copy', async () => {
    await alice.send(xml('message', { to: 'erin@localhost', type: 'chat', id: 'off1' }, xml('body', {}, 'while you were away')));
    // Offline storage acknowledges nothing to the sender; wait for it in erin's next login.
    const erin = await connect({ port: ts.port, username: 'erin', password: 'pw', resource: 'back' });
    try {
      await erin.send(xml('presence'));
      const offline = await erin.waitFor((s) => s.attrs.id === 'off1', 'offline message', 10000);
      const [sid] = stanzaIds(offline);
      assert.ok(sid, `offline copy carries the archive id: ${offline.toString()}`);
      const { results } = await query(erin, { ids: sid!.attrs.id });
      assert.equal(bodyOf(results[0]!), 'while you were away');
    } finally {
      await erin.stop();
    }
  });

  it('removes the archive with the account', async () => {
    await ts.addUser('gone', 'pw');
    const gone = await connect({ port: ts.port, username: 'gone', password: 'pw', resource: 'r' });
    await gone.send(xml('presence'));
    await alice.send(xml('message', { to: 'gone@localhost', type: 'chat', id: 'g1' }, xml('body', {}, 'soon gone')));
    await gone.waitFor((s) => s.attrs.id === 'g1', 'message');
    assert.equal((await query(gone)).results.length, 1);
    await iq(gone, 'set', xml('query', { xmlns: 'jabber:iq:register' }, xml('remove')));
    await gone.stop();
    const left: unknown[] = [];
    for await (const e of ts.server.storage.archive('mam').query('gone@localhost', {})) left.push(e);
    assert.deepEqual(left, []);
  });
});

describe('archive retention', () => {
  it('expires messages older than mam.retention in the background', async () => {
    // One second of retention, checked every second.
    const ts = await startServer({ mam: { retention: 1 / 86400, expiryInterval: 1 } });
    try {
      await ts.addUser('a', 'pw');
      await ts.addUser('b', 'pw');
      const a = await connect({ port: ts.port, username: 'a', password: 'pw' });
      const b = await connect({ port: ts.port, username: 'b', password: 'pw' });
      await b.send(xml('presence'));
      await a.send(xml('message', { to: 'b@localhost', type: 'chat', id: 'x' }, xml('body', {}, 'short-lived')));
      await b.waitFor((s) => s.attrs.id === 'x', 'message');
      assert.equal((await query(b)).results.length, 1);
      const logged = () => ts.logs.find((l) => l.includes('archive expiry') && /removed=[1-9]/.test(l));
      const start = Date.now();
      while (!logged()) {
        if (Date.now() - start > 15000) throw new Error('no expiry run removed the messages');
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal((await query(b)).results.length, 0);
      assert.equal((await query(a)).results.length, 0, "the sender's copy expired too");
      await a.stop();
      await b.stop();
    } finally {
      await ts.stop();
    }
  });
});
