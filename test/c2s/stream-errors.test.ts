// Hostile or broken input gets the right stream error (RFC 6120 §4.9) and
// never disturbs other users.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import { startServer, type TestServer } from '../helpers/server.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';
import { RawSocket, rawLogin, securedStream, streamHeader } from '../helpers/raw-socket.ts';

const BILLION_LAUGHS = `<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><message><body>&lol3;</body></message>`;

function streamError(condition: string): RegExp {
  return new RegExp(`<stream:error><${condition} xmlns="urn:ietf:params:xml:ns:xmpp-streams"/>`);
}

describe('stream errors', () => {
  let ts: TestServer;
  let bystander: TestClient;

  /** The bystander can still talk to itself through the server. */
  async function bystanderAlive(tag: string): Promise<void> {
    await bystander.send(xml('message', { to: bystander.jid, type: 'chat' }, xml('body', {}, tag)));
    const got = await bystander.waitFor((s) => s.is('message') && s.getChildText('body') === tag, tag);
    assert.equal(got.attrs.from, bystander.jid);
  }

  before(async () => {
    ts = await startServer({ limits: { maxStanzaSize: 10_000, maxAuthFailures: 2 } });
    await ts.addUser('carol', 'pw');
    await ts.addUser('dave', 'pw');
    bystander = await connect({ port: ts.port, username: 'carol', password: 'pw' });
  });
  after(async () => {
    await bystander.stop();
    await ts.stop();
  });

  it('answers a billion-laughs document with restricted-xml', async () => {
    const s = await RawSocket.connect(ts.port);
    s.write(BILLION_LAUGHS);
    await s.waitFor(streamError('restricted-xml'));
    await s.waitClosed();
    await bystanderAlive('after laughs');
  });

  it('answers an over-size stanza with policy-violation, from an authenticated user', async () => {
    const s = await rawLogin(ts.port, 'dave', 'pw');
    s.write(`<message to='carol@localhost'><body>${'x'.repeat(20_000)}</body></message>`);
    await s.waitFor(streamError('policy-violation'));
    await s.waitClosed();
    await bystanderAlive('after big stanza');
  });

  it('answers garbage bytes with not-well-formed', async () => {
    const s = await RawSocket.connect(ts.port);
    s.write(streamHeader());
    await s.waitFor(/<\/stream:features>/);
    s.write(Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x80, 0x81, 0x3c, 0x3e]));
    await s.waitFor(streamError('not-well-formed'));
    await s.waitClosed();
    await bystanderAlive('after garbage');
  });

  it('answers mismatched tags with not-well-formed', async () => {
    const s = await RawSocket.connect(ts.port);
    s.write(`${streamHeader()}<a></b>`);
    await s.waitFor(streamError('not-well-formed'));
  });

  it('answers too deep nesting with policy-violation', async () => {
    const s = await rawLogin(ts.port, 'dave', 'pw', 'deep');
    s.write(`<message>${'<x>'.repeat(100)}`);
    await s.waitFor(streamError('policy-violation'));
  });

  it('answers an unknown domain with host-unknown', async () => {
    const s = await RawSocket.connect(ts.port);
    s.write(streamHeader('elsewhere.example'));
    await s.waitFor(streamError('host-unknown'));
    await s.waitClosed();
  });

  it('answers a wrong stream namespace with invalid-namespace', async () => {
    const s = await RawSocket.connect(ts.port);
    s.write("<stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='urn:wrong'>");
    await s.waitFor(streamError('invalid-namespace'));
  });

  it('closes the stream after too many failed authentications', async () => {
    const { s } = await securedStream(ts.port);
    const bad = Buffer.from('\0dave\0wrong').toString('base64');
    s.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${bad}</auth>`);
    await s.waitFor(/<not-authorized\/>/);
    s.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${bad}</auth>`);
    await s.waitFor(/<not-authorized\/>.*<not-authorized\/>/s);
    await s.waitFor(streamError('policy-violation'));
    await s.waitClosed();
  });

  it('refuses stanzas before authentication with not-authorized', async () => {
    const s = await RawSocket.connect(ts.port);
    s.write(streamHeader());
    await s.waitFor(/<\/stream:features>/);
    s.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    await s.waitFor(/<proceed/);
    await s.startTls();
    s.write(`${streamHeader()}<message to='carol@localhost'><body>sneaky</body></message>`);
    await s.waitFor(streamError('not-authorized'));
  });

  it('overwrites a forged from with the sender\'s JID', async () => {
    const s = await rawLogin(ts.port, 'dave', 'pw', 'forger');
    s.write(`<message to='${bystander.jid}' from='carol@localhost/other' type='chat'><body>forged</body></message>`);
    const got = await bystander.waitFor((m) => m.getChildText('body') === 'forged', 'forged message');
    assert.equal(got.attrs.from, 'dave@localhost/forger');
    s.destroy();
  });

  it('sends system-shutdown when the server stops', async () => {
    const other = await startServer();
    await other.addUser('eve', 'pw');
    const s = await rawLogin(other.port, 'eve', 'pw');
    const stopped = other.stop();
    await s.waitFor(streamError('system-shutdown'));
    await s.waitFor(/<\/stream:stream>/);
    await stopped;
  });
});

describe('unauthenticated connections', () => {
  it('times out a connection that does not authenticate', async () => {
    // Its own server: a one-second limit would also catch slow real logins.
    const ts = await startServer({ limits: { authTimeout: 1 } });
    const s = await RawSocket.connect(ts.port);
    s.write(streamHeader());
    await s.waitFor(/<\/stream:features>/);
    await s.waitFor(streamError('connection-timeout'), 4000);
    await s.waitClosed();
    await ts.stop();
  });
});

describe('connection limits', () => {
  it('refuses connections beyond the per-IP limit with policy-violation', async () => {
    const ts = await startServer({ limits: { maxConnectionsPerIp: 2 } });
    const a = await RawSocket.connect(ts.port);
    const b = await RawSocket.connect(ts.port);
    const c = await RawSocket.connect(ts.port);
    await c.waitFor(streamError('policy-violation'));
    assert.equal(a.closed || b.closed, false);
    for (const s of [a, b, c]) s.destroy();
    await ts.stop();
  });
});

describe('keepalives', () => {
  it('sends whitespace to a quiet authenticated stream', async () => {
    const ts = await startServer({ limits: { keepaliveInterval: 0.2 } });
    await ts.addUser('kim', 'pw');
    const s = await rawLogin(ts.port, 'kim', 'pw');
    await s.waitFor(/^ +$/, 3000);
    s.destroy();
    await ts.stop();
  });
});
