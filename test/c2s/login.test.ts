// Logins with two independent real clients (@xmpp/client from npm and
// Debian's python3-slixmpp) over STARTTLS and direct TLS, every mechanism.
import { generateSelfSigned } from '../../src/tls/certs.ts';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startServer, type TestServer } from '../helpers/server.ts';
import { SlixClient } from '../helpers/slixmpp.ts';
import { connect } from '../helpers/xmpp-client.ts';
import { RawSocket, streamHeader } from '../helpers/raw-socket.ts';

describe('c2s login', () => {
  let ts: TestServer;
  before(async () => {
    ts = await startServer();
    await ts.addUser('alice', 'wonder land');
  });
  after(() => ts.stop());

  for (const mechanism of ['SCRAM-SHA-1', 'PLAIN'] as const) {
    for (const directTls of [false, true]) {
      it(`@xmpp/client logs in with ${mechanism} over ${directTls ? 'direct TLS' : 'STARTTLS'}`, async () => {
        const c = await connect({
          port: directTls ? ts.directTlsPort : ts.port,
          directTls,
          username: 'alice',
          password: 'wonder land',
          mechanism,
        });
        assert.match(c.jid, /^alice@localhost\/.+/);
        await c.stop();
      });
    }
  }

  for (const mech of ['SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN'] as const) {
    for (const directTls of [false, true]) {
      it(`slixmpp logs in with ${mech} over ${directTls ? 'direct TLS' : 'STARTTLS'}`, async () => {
        const c = new SlixClient({
          jid: 'alice@localhost/slix',
          password: 'wonder land',
          port: directTls ? ts.directTlsPort : ts.port,
          mech,
          directTls,
        });
        try {
          assert.equal(await c.started(), 'alice@localhost/slix');
        } finally {
          await c.stop();
        }
      });
    }
  }

  it('refuses a wrong password with not-authorized (both clients)', async () => {
    await assert.rejects(connect({ port: ts.port, username: 'alice', password: 'nope' }), /not-authorized/);
    const c = new SlixClient({
      jid: 'alice@localhost',
      password: 'nope',
      port: ts.port,
      mech: 'SCRAM-SHA-256',
    });
    await assert.rejects(c.started(), /failed_auth/);
    await c.stop();
  });

  it('refuses an unknown user exactly like a wrong password', async () => {
    await assert.rejects(connect({ port: ts.port, username: 'nobody', password: 'x' }), /not-authorized/);
  });

  it('offers only STARTTLS before TLS, and SCRAM + PLAIN after', async () => {
    const s = await RawSocket.connect(ts.port);
    s.write(streamHeader());
    const [features] = await s.waitFor(/<stream:features>.*<\/stream:features>/s);
    assert.match(features, /<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"><required\/><\/starttls>/);
    assert.doesNotMatch(features, /mechanism/);
    s.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    await s.waitFor(/<proceed/);
    await s.startTls();
    s.write(streamHeader());
    const [secured] = await s.waitFor(/<stream:features>.*<\/stream:features>/s);
    assert.match(secured, /SCRAM-SHA-256.*SCRAM-SHA-1.*PLAIN/s);
    s.destroy();
  });

  it('replaces an older session that binds the same resource', async () => {
    const first = await connect({
      port: ts.port,
      username: 'alice',
      password: 'wonder land',
      resource: 'phone',
    });
    const closed = new Promise<string>((resolve) => first.xmpp.on('error', (e: Error) => resolve(String(e))));
    const second = await connect({
      port: ts.port,
      username: 'alice',
      password: 'wonder land',
      resource: 'phone',
    });
    assert.match(await closed, /conflict/);
    assert.equal(second.jid, 'alice@localhost/phone');
    await second.stop();
    await first.stop();
  });
});

describe('c2s without required TLS', () => {
  let ts: TestServer;
  before(async () => {
    ts = await startServer({ c2s: { requireTls: false } });
  });
  after(() => ts.stop());

  it('never offers PLAIN on an unencrypted stream', async () => {
    const s = await RawSocket.connect(ts.port);
    s.write(streamHeader());
    const [features] = await s.waitFor(/<stream:features>.*<\/stream:features>/s);
    assert.match(features, /SCRAM-SHA-256/);
    assert.doesNotMatch(features, /PLAIN/);
    // And asking for it anyway fails.
    s.write(
      `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from('\0a\0b').toString('base64')}</auth>`,
    );
    await s.waitFor(/<failure xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><invalid-mechanism\/>/);
    s.destroy();
  });
});

describe('certificates', () => {
  it('picks up a certificate dropped into tls.dir on reload (SIGHUP)', async () => {
    const { join } = await import('node:path');
    const { connect: tlsConnect } = await import('node:tls');
    const ts = await startServer();
    const served = () =>
      new Promise<string>((resolve, reject) => {
        const s = tlsConnect(
          { port: ts.directTlsPort, host: '127.0.0.1', servername: 'localhost', rejectUnauthorized: false },
          () => {
            resolve(s.getPeerCertificate().fingerprint256);
            s.destroy();
          },
        );
        s.on('error', reject);
      });
    const before = await served();
    const dir = ts.config.tls.dir;
    generateSelfSigned(join(dir, 'localhost.crt'), join(dir, 'localhost.key'), ['localhost'], 1);
    assert.equal(await served(), before, 'nothing changes before the reload');
    ts.server.certs.reload();
    const after = await served();
    assert.notEqual(after, before);
    await ts.stop();
  });
});
