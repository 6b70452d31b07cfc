// XEP-0198 on the wire, with a raw client that does exactly what each case
// needs: enabling, counting and acknowledgements (mod 2^32), resumption and
// its failures, and what happens to stanzas a client never acknowledged.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import { type RawSocket, rawLogin, securedStream, streamHeader } from '../helpers/raw-socket.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { connect } from '../helpers/xmpp-client.ts';

const SM = 'urn:xmpp:sm:3';

/** A raw client that authenticates (PLAIN) but does not bind: ready for <resume/> or <bind/>. */
async function authenticated(port: number, user: string): Promise<RawSocket> {
  const { s } = await securedStream(port);
  s.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0pw`).toString('base64')}</auth>`);
  await s.waitFor(/<success/);
  s.input = '';
  s.write(streamHeader());
  await s.waitFor(/<\/stream:features>/);
  return s;
}

/** Logs in, enables SM (resumable unless told otherwise); returns the socket and the SM-ID. */
async function enabled(port: number, user: string, resource: string, attrs = "resume='true'"): Promise<{ s: RawSocket; id: string }> {
  const s = await rawLogin(port, user, 'pw', resource);
  s.write(`<enable xmlns='${SM}' ${attrs}/>`);
  const [enabledEl] = await s.waitFor(/<enabled[^>]*\/>/);
  const id = /id=["']([^"']+)/.exec(enabledEl!)?.[1] ?? '';
  s.input = '';
  return { s, id };
}

/** The h of the last <a/> in the input. */
function lastH(s: RawSocket): number {
  const all = [...s.input.matchAll(/<a xmlns=["']urn:xmpp:sm:3["'] h=["'](\d+)["']\/>/g)];
  return Number(all[all.length - 1]![1]);
}

describe('stream management (XEP-0198) on the wire', () => {
  let ts: TestServer;

  before(async () => {
    ts = await startServer();
    for (const u of ['alice', 'bob', 'carol']) await ts.addUser(u, 'pw');
  });
  after(async () => {
    await ts?.stop();
  });

  it('is offered after authentication, and only enabled after binding', async () => {
    const { s, features } = await securedStream(ts.port);
    // (SASL2 lists <sm/> inline: resumption in the authentication itself.)
    assert.doesNotMatch(features.replace(/<authentication[\s\S]*<\/authentication>/, ''), /urn:xmpp:sm:3/, 'not before authentication');
    s.destroy();
    const early = await authenticated(ts.port, 'alice');
    early.write(`<enable xmlns='${SM}'/>`);
    await early.waitFor(/<failed xmlns=["']urn:xmpp:sm:3["']><unexpected-request/);
    // The stream goes on: binding still works.
    early.write(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`);
    await early.waitFor(/<jid>/);
    early.destroy();
  });

  it('enables with an id, counts stanzas both ways and acknowledges them', async () => {
    const { s, id } = await enabled(ts.port, 'alice', 'count', "resume='true' max='60'");
    assert.ok(id.length >= 16, 'a long random SM-ID');
    // Three stanzas in: <a h='3'/> once they are handled.
    s.write(`<presence/><iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq><iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq><r xmlns='${SM}'/>`);
    await s.waitFor(/<a xmlns=["']urn:xmpp:sm:3["'] h=["']3["']\/>/);
    // Out: own presence, two ping results; the server asks for acks itself after a few stanzas.
    for (let i = 0; i < 5; i++) s.write(`<iq type='get' id='q${i}'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await s.waitFor(/<r xmlns=["']urn:xmpp:sm:3["']\/>/);
    // Every result is out (and counted) before the client acknowledges what it has.
    await s.waitFor(/id=["']q4["']/);
    const session = ts.server.smSessions.get(id)!;
    assert.ok(session.sm!.unacked.length >= 5);
    s.write(`<a xmlns='${SM}' h='${session.sm!.unacked.length}'/><r xmlns='${SM}'/>`);
    await s.waitFor(/h=["']8["']\/>/);
    assert.equal(session.sm!.unacked.length, 0, 'acknowledged stanzas are dropped');
    s.write('</stream:stream>');
    await s.waitClosed();
  });

  it('ends the stream when the client acknowledges more than it was sent', async () => {
    const { s } = await enabled(ts.port, 'alice', 'toohigh');
    s.write(`<a xmlns='${SM}' h='7'/>`);
    const [err] = await s.waitFor(/<stream:error>.*<\/stream:error>/s);
    assert.match(err!, /<undefined-condition/);
    assert.match(err!, /<handled-count-too-high xmlns=["']urn:xmpp:sm:3["'] h=["']7["'] send-count=["']0["']\/>/);
    await s.waitClosed();
  });

  it('refuses a second <enable/>, <r/> without SM, and a bad h', async () => {
    const plain = await rawLogin(ts.port, 'carol', 'pw', 'plain');
    plain.write(`<r xmlns='${SM}'/>`);
    await plain.waitFor(/<failed xmlns=["']urn:xmpp:sm:3["']><unexpected-request/);
    plain.destroy();
    const { s } = await enabled(ts.port, 'carol', 'twice');
    s.write(`<a xmlns='${SM}' h='many'/>`);
    await s.waitFor(/<stream:error>.*undefined-condition.*<\/stream:error>/s);
    const again = await enabled(ts.port, 'carol', 'again');
    again.s.write(`<enable xmlns='${SM}'/>`);
    await again.s.waitFor(/<stream:error>.*policy-violation/s);
  });

  it('fails resumption of unknown, foreign or over-acknowledged sessions, then lets the client bind', async () => {
    const unknown = await authenticated(ts.port, 'bob');
    unknown.write(`<resume xmlns='${SM}' previd='nope' h='0'/>`);
    await unknown.waitFor(/<failed xmlns=["']urn:xmpp:sm:3["']><item-not-found/);
    unknown.write(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>after</resource></bind></iq>`);
    await unknown.waitFor(/<jid>bob@localhost\/after<\/jid>/);
    unknown.destroy();

    // alice's session cannot be taken by bob.
    const { s: alice, id } = await enabled(ts.port, 'alice', 'mine');
    alice.destroy();
    const thief = await authenticated(ts.port, 'bob');
    thief.write(`<resume xmlns='${SM}' previd='${id}' h='0'/>`);
    await thief.waitFor(/<failed xmlns=["']urn:xmpp:sm:3["']><item-not-found/);
    thief.destroy();

    // alice herself, acknowledging stanzas she never got: refused, and the old session ends.
    const greedy = await authenticated(ts.port, 'alice');
    greedy.write(`<resume xmlns='${SM}' previd='${id}' h='99'/>`);
    const [f] = await greedy.waitFor(/<failed[^>]*>.*<\/failed>/s);
    assert.match(f!, /undefined-condition/);
    assert.match(f!, /handled-count-too-high/);
    assert.equal(ts.server.smSessions.get(id), undefined, 'the old session is gone');
    greedy.destroy();
  });

  it('resumes after a dropped socket: presence kept, messages sent meanwhile arrive after <resumed/>', async () => {
    const bob = await connect({ port: ts.port, username: 'bob', password: 'pw', resource: 'watch' });
    await bob.send(xml('presence'));
    const { s, id } = await enabled(ts.port, 'alice', 'phone');
    s.write(`<presence/><r xmlns='${SM}'/>`);
    await s.waitFor(/h=["']1["']/);
    const received = (s.input.match(/<presence/g) ?? []).length;
    s.destroy();
    // While alice's phone is away, bob writes to it; it stays available, so they queue for it.
    for (let i = 1; i <= 3; i++) {
      await bob.send(xml('message', { to: 'alice@localhost/phone', type: 'chat', id: `away${i}` }, xml('body', {}, `while away ${i}`)));
    }
    const again = await authenticated(ts.port, 'alice');
    again.write(`<resume xmlns='${SM}' previd='${id}' h='${received}'/>`);
    await again.waitFor(/<resumed xmlns=["']urn:xmpp:sm:3["'][^>]*h=["']1["']/);
    for (let i = 1; i <= 3; i++) await again.waitFor(new RegExp(`while away ${i}`));
    const resumedAt = again.input.indexOf('<resumed');
    assert.ok(again.input.indexOf('while away 1') > resumedAt, 'resent after <resumed/>');
    assert.equal(ts.server.sessions.available('alice@localhost').length, 1, 'still one available resource');
    // The stream works as before.
    again.write(`<iq type='get' id='after'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await again.waitFor(/id=["']after["']/);
    again.write('</stream:stream>');
    await again.waitClosed();
    await bob.stop();
  });

  it('after the resume timeout, messages go to offline storage and iq requests bounce', async () => {
    const bob = await connect({ port: ts.port, username: 'bob', password: 'pw', resource: 'desk' });
    await bob.send(xml('presence'));
    // The client asks for a short resumption window (max).
    const { s } = await enabled(ts.port, 'carol', 'tablet', "resume='true' max='1'");
    s.write('<presence/>');
    await s.waitFor(/<presence/);
    s.destroy();
    await bob.send(xml('message', { to: 'carol@localhost/tablet', type: 'chat', id: 'late1' }, xml('body', {}, 'kept for later')));
    await bob.send(xml('iq', { to: 'carol@localhost/tablet', type: 'get', id: 'q1' }, xml('query', { xmlns: 'jabber:iq:version' })));
    const bounced = await bob.waitFor((x) => x.attrs.id === 'q1', 'iq bounce', 15000);
    assert.equal(bounced.attrs.type, 'error');
    assert.ok(bounced.getChild('error')?.getChild('recipient-unavailable'), bounced.toString());
    // carol comes back with a new session: the message waited in offline storage.
    const carol = await rawLogin(ts.port, 'carol', 'pw', 'new');
    carol.write('<presence/>');
    const [m] = await carol.waitFor(/<message[^>]*id=["']late1["'][\s\S]*?<\/message>/);
    assert.match(m!, /kept for later/);
    assert.match(m!, /urn:xmpp:delay/);
    carol.destroy();
    await bob.stop();
  });

  it('counts mod 2^32: acknowledgements wrap around', async () => {
    const { s, id } = await enabled(ts.port, 'bob', 'wrap');
    const sm = ts.server.smSessions.get(id)!.sm!;
    // Pretend 2^32 - 1 stanzas were already acknowledged, then send two more.
    (sm as unknown as { acked: number; sent: number }).acked = 2 ** 32 - 1;
    (sm as unknown as { acked: number; sent: number }).sent = 2 ** 32 - 1;
    s.write(`<iq type='get' id='w1'><ping xmlns='urn:xmpp:ping'/></iq><iq type='get' id='w2'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await s.waitFor(/id=["']w2["']/);
    assert.equal(sm.unacked.length, 2);
    s.write(`<a xmlns='${SM}' h='1'/><r xmlns='${SM}'/>`);
    await s.waitFor(/<a xmlns=["']urn:xmpp:sm:3["'] h=["']2["']\/>/);
    assert.equal(sm.unacked.length, 0, 'h=1 after 2^32-1 acknowledges both');
    assert.equal(lastH(s), 2);
    s.destroy();
  });
});
