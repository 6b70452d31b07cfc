// SASL2 (XEP-0388) with Bind2 (XEP-0386), FAST (XEP-0484) and channel
// binding (XEP-0440, SCRAM-*-PLUS).
//
// The real client is @xmpp/client 0.14 from npm: it speaks SASL2, Bind2
// and FAST with HT-SHA-256-NONE, and logs in by itself with them when the
// server offers them. No client on npm or in Debian speaks SCRAM-*-PLUS with
// tls-exporter or tls-server-end-point, the FAST replay counter or the
// channel-bound HT-SHA-256-EXPR (Debian's slixmpp 1.8.3 knows only
// tls-unique, which TLS 1.3 lacks; go-sendxmpp 0.5.6 has no -PLUS), so those
// are tested over a raw TLS socket with a client written here from the
// specifications: RFC 5802/7677 SCRAM, RFC 9266 tls-exporter, RFC 5929
// tls-server-end-point, draft-schmaus-kitten-sasl-ht.
import assert from 'node:assert/strict';
import { createHash, createHmac, pbkdf2Sync, randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { client, xml } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import { type RawSocket, rawLogin, securedStream } from '../helpers/raw-socket.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { SlixClient } from '../helpers/slixmpp.ts';

const SASL2 = 'urn:xmpp:sasl:2';
const FAST = 'urn:xmpp:fast:0';
const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64');
const hmac = (hash: string, key: Buffer | string, data: Buffer | string) => createHmac(hash, key).update(data).digest();

/** Client-side channel binding data of a raw TLS socket. */
function cbData(s: RawSocket, type: 'tls-exporter' | 'tls-server-end-point'): Buffer {
  const tls = s.tls!;
  if (type === 'tls-exporter') return tls.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding', Buffer.alloc(0));
  // The test certificate is signed with SHA-256 (RFC 5929 §4.1: the certificate's own hash).
  return createHash('sha256').update(tls.getPeerCertificate().raw).digest();
}

function additionalData(input: string): Buffer {
  const m = /<additional-data>([^<]*)<\/additional-data>/.exec(input);
  return Buffer.from(m?.[1] ?? '', 'base64');
}

/**
 * A SCRAM-SHA-256(-PLUS) login over SASL2 on a secured raw stream, as a
 * client following RFC 5802 does. `cb` is the binding data the client puts
 * in its final message (the stream's own, or another's to play a man in the
 * middle). Resolves with the server's last element and whether its
 * signature checked out.
 */
async function scramSasl2(
  s: RawSocket,
  user: string,
  password: string,
  plus: { type: string; data: Buffer } | null,
  extra = '',
): Promise<{ outcome: string; serverVerified: boolean }> {
  const gs2 = plus ? `p=${plus.type},,` : 'n,,';
  const nonce = randomBytes(18).toString('base64');
  const clientFirstBare = `n=${user},r=${nonce}`;
  const mechanism = plus ? 'SCRAM-SHA-256-PLUS' : 'SCRAM-SHA-256';
  s.input = '';
  s.write(
    `<authenticate xmlns='${SASL2}' mechanism='${mechanism}'><initial-response>${b64(gs2 + clientFirstBare)}</initial-response>` +
      `<user-agent id='${randomUUID()}'><software>raw test</software></user-agent>${extra}</authenticate>`,
  );
  const [, challenge] = (await s.waitFor(/<challenge xmlns=["']urn:xmpp:sasl:2["']>([^<]*)<\/challenge>/, 15000)) as string[];
  const serverFirst = Buffer.from(challenge!, 'base64').toString();
  const attrs = Object.fromEntries(serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)]));
  assert.ok(attrs.r!.startsWith(nonce), 'the server nonce extends the client nonce');
  const channel = Buffer.concat([Buffer.from(gs2), plus ? plus.data : Buffer.alloc(0)]);
  const finalNoProof = `c=${b64(channel)},r=${attrs.r}`;
  const salted = pbkdf2Sync(password, Buffer.from(attrs.s!, 'base64'), Number(attrs.i), 32, 'sha256');
  const clientKey = hmac('sha256', salted, 'Client Key');
  const storedKey = createHash('sha256').update(clientKey).digest();
  const authMessage = `${clientFirstBare},${serverFirst},${finalNoProof}`;
  const signature = hmac('sha256', storedKey, authMessage);
  const proof = Buffer.from(clientKey.map((b, i) => b ^ signature[i]!));
  s.input = '';
  s.write(`<response xmlns='${SASL2}'>${b64(`${finalNoProof},p=${b64(proof)}`)}</response>`);
  const [outcome] = (await s.waitFor(/<(success|failure) xmlns=["']urn:xmpp:sasl:2["']>[\s\S]*?<\/\1>/, 15000)) as string[];
  const serverSignature = hmac('sha256', hmac('sha256', salted, 'Server Key'), authMessage);
  const serverVerified = additionalData(outcome!).toString() === `v=${b64(serverSignature)}`;
  return { outcome: outcome!, serverVerified };
}

/** A SASL2 login with an HT-SHA-256-* FAST token (draft-schmaus-kitten-sasl-ht). */
async function htSasl2(
  s: RawSocket,
  o: { user: string; token: string; mechanism: string; agent: string; cb?: Buffer; fast?: string; extra?: string },
): Promise<{ outcome: string; responderOk: boolean; initial: string }> {
  const cb = o.cb ?? Buffer.alloc(0);
  const initiator = hmac('sha256', o.token, Buffer.concat([Buffer.from('Initiator'), cb]));
  const initial = b64(Buffer.concat([Buffer.from(`${o.user}\0`), initiator]));
  const xmlText =
    `<authenticate xmlns='${SASL2}' mechanism='${o.mechanism}'><initial-response>${initial}</initial-response>` +
    `<user-agent id='${o.agent}'/>${o.fast ?? `<fast xmlns='${FAST}'/>`}${o.extra ?? ''}</authenticate>`;
  s.input = '';
  s.write(xmlText);
  const [outcome] = (await s.waitFor(/<(success|failure) xmlns=["']urn:xmpp:sasl:2["']>[\s\S]*?<\/\1>/, 15000)) as string[];
  const responder = hmac('sha256', o.token, Buffer.concat([Buffer.from('Responder'), cb]));
  return { outcome: outcome!, responderOk: additionalData(outcome!).equals(responder), initial: xmlText };
}

/** A PLAIN SASL2 login that asks for a FAST token; returns the token. */
async function tokenByPassword(port: number, user: string, agent: string, mechanism: string, extra = ''): Promise<{ token: string; s: RawSocket }> {
  const { s } = await securedStream(port);
  s.input = '';
  s.write(
    `<authenticate xmlns='${SASL2}' mechanism='PLAIN'><initial-response>${b64(`\0${user}\0pw`)}</initial-response>` +
      `<user-agent id='${agent}'/><request-token xmlns='${FAST}' mechanism='${mechanism}'/>${extra}</authenticate>`,
  );
  const [success] = (await s.waitFor(/<success xmlns=["']urn:xmpp:sasl:2["']>[\s\S]*?<\/success>/, 15000)) as string[];
  const token = /<token xmlns=["']urn:xmpp:fast:0["'][^>]*token=["']([^"']+)["']/.exec(success!)?.[1];
  assert.ok(token, `a token in ${success}`);
  return { token: token!, s };
}

describe('SASL2, Bind2, FAST and channel binding', () => {
  let ts: TestServer;

  before(async () => {
    ts = await startServer();
    for (const u of ['alice', 'bob', 'carol', 'dave']) await ts.addUser(u, 'pw');
  });
  after(() => ts?.stop());

  it('@xmpp/client logs in with SASL2 + Bind2 in one exchange, gets a FAST token and reconnects with it, not the password', async () => {
    const agent = randomUUID();
    type Token = { mechanism: string; token: string; expiry: string };
    // (Set by the client's callbacks: the cast keeps TypeScript from narrowing it to null.)
    let saved = null as Token | null;
    const sent: Element[] = [];
    const start = async (password: string) => {
      const xmpp = client({
        service: `xmpp://127.0.0.1:${ts.port}`,
        domain: 'localhost',
        username: 'alice',
        password,
        resource: 'phone',
        userAgent: xml('user-agent', { id: agent }, xml('software', {}, 'test')),
        timeout: 15000,
      });
      xmpp.reconnect.stop();
      xmpp.on('error', () => {});
      xmpp.on('send', (e: Element) => sent.push(e));
      xmpp.fast.saveToken = async (t: Token) => {
        saved = t;
      };
      xmpp.fast.fetchToken = async () => saved;
      xmpp.fast.deleteToken = async () => {
        saved = null;
      };
      const jid = await xmpp.start();
      return { xmpp, jid: jid.toString() };
    };

    const first = await start('pw');
    const auth1 = sent.find((e) => e.is('authenticate', SASL2))!;
    assert.ok(auth1, 'the client authenticated with SASL2');
    assert.equal(auth1.attrs.mechanism, 'SCRAM-SHA-1');
    assert.ok(auth1.getChild('bind', 'urn:xmpp:bind:0'), 'binding travels with the authentication');
    assert.ok(!sent.some((e) => e.is('iq') && e.getChild('bind')), 'no separate resource binding');
    assert.match(first.jid, /^alice@localhost\/phone\/.+/, 'Bind2 resource: the tag and a stable id');
    assert.ok(saved, 'a FAST token was issued');
    assert.equal(saved!.mechanism, 'HT-SHA-256-NONE');
    assert.ok(Date.parse(saved!.expiry) > Date.now(), 'it expires in the future');
    // The session works: a message to itself comes back.
    const echo = new Promise<Element>((resolve) => first.xmpp.on('stanza', (s: Element) => s.is('message') && resolve(s)));
    await first.xmpp.send(xml('message', { to: first.jid, type: 'chat' }, xml('body', {}, 'hi me')));
    assert.equal((await echo).getChildText('body'), 'hi me');
    await first.xmpp.stop();

    // The password is wrong now: only the token can log this client in.
    sent.length = 0;
    const second = await start('not the password');
    const auth2 = sent.find((e) => e.is('authenticate', SASL2))!;
    assert.equal(auth2.attrs.mechanism, 'HT-SHA-256-NONE');
    assert.equal(second.jid, first.jid, 'the same client gets the same resource back');
    await second.xmpp.stop();
    assert.ok(ts.logs.some((l) => /authenticated user=alice@localhost/.test(l)));
    assert.ok(!ts.logs.some((l) => l.includes(saved!.token)), 'tokens never reach the log');
  });

  it('SCRAM-SHA-256-PLUS with tls-exporter succeeds; a binding from another connection fails like a wrong password', async () => {
    const { s, features } = await securedStream(ts.port);
    assert.match(features, /<authentication xmlns=["']urn:xmpp:sasl:2["']>.*SCRAM-SHA-256-PLUS/s);
    assert.match(features, /<sasl-channel-binding xmlns=["']urn:xmpp:sasl-cb:0["']>.*type=["']tls-exporter["']/s);
    assert.equal(s.tls!.getProtocol(), 'TLSv1.3');
    const ok = await scramSasl2(s, 'bob', 'pw', { type: 'tls-exporter', data: cbData(s, 'tls-exporter') });
    assert.match(ok.outcome, /^<success/);
    assert.ok(ok.serverVerified, 'the server proved it knows the password too');
    assert.match(ok.outcome, /<authorization-identifier>bob@localhost<\/authorization-identifier>/);
    s.destroy();

    // A man in the middle relays the exchange over its own TLS connection: the bindings differ.
    const { s: victim } = await securedStream(ts.port);
    const { s: relay } = await securedStream(ts.port);
    const bad = await scramSasl2(relay, 'bob', 'pw', { type: 'tls-exporter', data: cbData(victim, 'tls-exporter') });
    assert.match(bad.outcome, /^<failure[^>]*><not-authorized/);
    assert.ok(ts.logs.some((l) => /channel-binding-mismatch/.test(l)), 'logged as a binding mismatch');
    victim.destroy();
    relay.destroy();
  });

  it('SCRAM-SHA-256-PLUS with tls-server-end-point succeeds; a binding type the stream lacks is refused', async () => {
    const { s } = await securedStream(ts.port);
    const ok = await scramSasl2(s, 'bob', 'pw', { type: 'tls-server-end-point', data: cbData(s, 'tls-server-end-point') });
    assert.match(ok.outcome, /^<success/);
    assert.ok(ok.serverVerified);
    s.destroy();
    const { s: s2 } = await securedStream(ts.port);
    const unique = await scramSasl2(s2, 'bob', 'pw', { type: 'tls-unique', data: randomBytes(12) }).catch((e: Error) => ({ outcome: e.message, serverVerified: false }));
    // Refused at the first message: no challenge comes.
    assert.match(s2.input, /<failure xmlns=["']urn:xmpp:sasl:2["']>/);
    assert.doesNotMatch(unique.outcome, /^<success/);
    s2.destroy();
  });

  it('legacy SASL is unchanged by default: no -PLUS mechanisms, and slixmpp logs in with its own choice at the first try', async () => {
    const { s, features } = await securedStream(ts.port);
    const legacy = /<mechanisms xmlns=["']urn:ietf:params:xml:ns:xmpp-sasl["']>(.*?)<\/mechanisms>/s.exec(features)![1]!;
    assert.doesNotMatch(legacy, /PLUS/);
    assert.match(legacy, /SCRAM-SHA-256/);
    s.destroy();
    const slix = new SlixClient({ jid: 'carol@localhost/slix', password: 'pw', port: ts.port });
    try {
      assert.equal(await slix.started(), 'carol@localhost/slix');
      assert.ok(!slix.events.some((e) => e.event === 'failed_auth'), 'no failed attempt first');
    } finally {
      await slix.stop();
    }
  });

  it('a FAST token with a replay counter: the same login replayed is refused', async () => {
    const agent = randomUUID();
    const { token, s } = await tokenByPassword(ts.port, 'dave', agent, 'HT-SHA-256-NONE');
    s.destroy();
    const { s: s1 } = await securedStream(ts.port);
    const ok = await htSasl2(s1, { user: 'dave', token, mechanism: 'HT-SHA-256-NONE', agent, fast: `<fast xmlns='${FAST}' count='7'/>` });
    assert.match(ok.outcome, /^<success/);
    assert.ok(ok.responderOk, 'the server proved it holds the token');
    s1.destroy();
    // The very same bytes again, on a new connection (an eavesdropper's replay).
    const { s: s2 } = await securedStream(ts.port);
    s2.input = '';
    s2.write(ok.initial);
    await s2.waitFor(/<failure xmlns=["']urn:xmpp:sasl:2["']><not-authorized/, 15000);
    s2.destroy();
    // A higher count is accepted: the token itself is still good.
    const { s: s3 } = await securedStream(ts.port);
    const again = await htSasl2(s3, { user: 'dave', token, mechanism: 'HT-SHA-256-NONE', agent, fast: `<fast xmlns='${FAST}' count='8'/>` });
    assert.match(again.outcome, /^<success/);
    s3.destroy();
    // Tokens are bound to the mechanism they were issued for.
    const { s: s4 } = await securedStream(ts.port);
    const other = await htSasl2(s4, { user: 'dave', token, mechanism: 'HT-SHA-256-ENDP', agent, cb: cbData(s4, 'tls-server-end-point') });
    assert.match(other.outcome, /^<failure[^>]*><not-authorized/);
    s4.destroy();
  });

  it('a revoked token is refused: the client invalidates it, or the password changes', async () => {
    const agent = randomUUID();
    const { token, s } = await tokenByPassword(ts.port, 'dave', agent, 'HT-SHA-256-NONE');
    s.destroy();
    const { s: s1 } = await securedStream(ts.port);
    const out = await htSasl2(s1, { user: 'dave', token, mechanism: 'HT-SHA-256-NONE', agent, fast: `<fast xmlns='${FAST}' invalidate='true'/>` });
    assert.match(out.outcome, /^<success/, 'the logout login itself succeeds');
    assert.doesNotMatch(out.outcome, /<token/, 'and gets no new token');
    s1.destroy();
    const { s: s2 } = await securedStream(ts.port);
    const gone = await htSasl2(s2, { user: 'dave', token, mechanism: 'HT-SHA-256-NONE', agent });
    assert.match(gone.outcome, /^<failure[^>]*><not-authorized/);
    s2.destroy();

    // A fresh token, then the password changes in-band (XEP-0077): the token goes with the old password.
    const fresh = await tokenByPassword(ts.port, 'dave', agent, 'HT-SHA-256-NONE', `<bind xmlns='urn:xmpp:bind:0'/>`);
    fresh.s.input = '';
    fresh.s.write(
      `<iq type='set' id='pw1' to='localhost'><query xmlns='jabber:iq:register'><username>dave</username><password>new pw</password></query></iq>`,
    );
    await fresh.s.waitFor(/<iq[^>]*type=["']result["'][^>]*id=["']pw1["']|<iq[^>]*id=["']pw1["'][^>]*type=["']result["']/, 15000);
    const { s: s3 } = await securedStream(ts.port);
    const revoked = await htSasl2(s3, { user: 'dave', token: fresh.token, mechanism: 'HT-SHA-256-NONE', agent });
    assert.match(revoked.outcome, /^<failure[^>]*><not-authorized/);
    s3.destroy();
    fresh.s.destroy();
    await ts.addUser('dave', 'pw');
  });

  it('HT-SHA-256-EXPR binds a token login to its TLS connection', async () => {
    const agent = randomUUID();
    const { token, s } = await tokenByPassword(ts.port, 'bob', agent, 'HT-SHA-256-EXPR');
    s.destroy();
    // Relayed with another connection's exporter: refused.
    const { s: victim } = await securedStream(ts.port);
    const { s: relay } = await securedStream(ts.port);
    const bad = await htSasl2(relay, { user: 'bob', token, mechanism: 'HT-SHA-256-EXPR', agent, cb: cbData(victim, 'tls-exporter') });
    assert.match(bad.outcome, /^<failure[^>]*><not-authorized/);
    victim.destroy();
    relay.destroy();
    // With its own: accepted, and the server's answer is bound to it too. Bind2 comes along.
    const { s: own } = await securedStream(ts.port);
    const ok = await htSasl2(own, {
      user: 'bob',
      token,
      mechanism: 'HT-SHA-256-EXPR',
      agent,
      cb: cbData(own, 'tls-exporter'),
      extra: `<bind xmlns='urn:xmpp:bind:0'><tag>laptop</tag></bind>`,
    });
    assert.match(ok.outcome, /^<success/);
    assert.ok(ok.responderOk);
    assert.match(ok.outcome, /<authorization-identifier>bob@localhost\/laptop\/[^<]+<\/authorization-identifier>/);
    assert.match(ok.outcome, /<bound xmlns=["']urn:xmpp:bind:0["']/);
    // Bound without a stream restart: stanzas flow at once.
    own.input = '';
    own.write(`<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await own.waitFor(/<iq[^>]*id=["']p1["']/, 15000);
    own.destroy();
  });

  it('Bind2 switches on carbons and stream management inline, and the client syncs from the archive', async () => {
    const { s } = await securedStream(ts.port);
    s.input = '';
    s.write(
      `<authenticate xmlns='${SASL2}' mechanism='PLAIN'><initial-response>${b64('\0carol\0pw')}</initial-response>` +
        `<user-agent id='${randomUUID()}'/><bind xmlns='urn:xmpp:bind:0'><tag>pad</tag>` +
        `<enable xmlns='urn:xmpp:carbons:2'/><enable xmlns='urn:xmpp:sm:3' resume='true'/><inactive xmlns='urn:xmpp:csi:0'/></bind></authenticate>`,
    );
    const [success] = (await s.waitFor(/<success xmlns=["']urn:xmpp:sasl:2["']>[\s\S]*?<\/success>/, 15000)) as string[];
    const full = /<authorization-identifier>([^<]+)<\/authorization-identifier>/.exec(success!)![1]!;
    assert.match(full, /^carol@localhost\/pad\/.+/);
    assert.match(success!, /<bound xmlns=["']urn:xmpp:bind:0["']>[\s\S]*<enabled xmlns=["']urn:xmpp:sm:3["'][^>]*resume=["']true["']/);
    assert.match(success!, /<metadata xmlns=["']urn:xmpp:mam:2["']/, 'the archive state for the client to sync from');
    // Features after <success/>, without a restart: no bind (done), no second SM offer.
    const [features] = (await s.waitFor(/<stream:features[\s\S]*?<\/stream:features>/, 15000)) as string[];
    assert.doesNotMatch(features!, /urn:ietf:params:xml:ns:xmpp-bind|urn:xmpp:sm:3/);
    // Carbons are on: what carol sends from another client shows up here.
    const other = await rawLogin(ts.port, 'carol', 'pw', 'desk');
    other.write(`<message to='bob@localhost' type='chat' id='m1'><body>from the desk</body></message>`);
    await s.waitFor(/<sent xmlns=["']urn:xmpp:carbons:2["']>[\s\S]*from the desk/, 15000);
    other.destroy();
    s.destroy();
  });

  it('SASL2 failures: an unknown mechanism, a wrong password', async () => {
    const { s } = await securedStream(ts.port);
    s.input = '';
    s.write(`<authenticate xmlns='${SASL2}' mechanism='X-NOPE'><initial-response>=</initial-response></authenticate>`);
    await s.waitFor(/<failure xmlns=["']urn:xmpp:sasl:2["']><invalid-mechanism/, 15000);
    const wrong = await scramSasl2(s, 'bob', 'not pw', null);
    assert.match(wrong.outcome, /^<failure[^>]*><not-authorized/);
    // The stream goes on: the right password still works on it.
    const right = await scramSasl2(s, 'bob', 'pw', null);
    assert.match(right.outcome, /^<success/);
    s.destroy();
  });
});
