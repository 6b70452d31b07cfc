// The https listener's TLS-ALPN-01 front: while a challenge is open, a
// handshake asking for "acme-tls/1" gets the challenge certificate and every
// other client the normal one; and a CA that cannot be reached leaves the
// server running on its current certificate, saying why.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { createServer, type Server as HttpServer } from 'node:http';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import acme from 'acme-client';
import { startServer, type TestServer } from '../helpers/server.ts';

function handshake(
  port: number,
  alpn?: string[],
): Promise<{ cert: X509Certificate; protocol: string | false | null }> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect(
      { host: '127.0.0.1', port, servername: 'localhost', ALPNProtocols: alpn, rejectUnauthorized: false },
      () => {
        const cert = s.getPeerX509Certificate()!;
        const protocol = s.alpnProtocol;
        s.end();
        resolve({ cert, protocol });
      },
    );
    s.on('error', reject);
  });
}

describe('TLS-ALPN-01 front and ACME failures', () => {
  let ts: TestServer;
  let port: number;
  // Not a CA: every request gets a 404.
  let notACa: HttpServer;

  before(async () => {
    notACa = createServer((_req, res) => res.writeHead(404).end('no ACME here'));
    await new Promise<void>((r) => notACa.listen(0, '127.0.0.1', r));
    const caPort = (notACa.address() as { port: number }).port;
    ts = await startServer({
      https: { port: 0 },
      acme: {
        enabled: true,
        directory: `http://127.0.0.1:${caPort}/dir`,
        challenges: ['tls-alpn-01'],
      },
    });
    port = ts.server.service((await import('../../src/websocket/http-service.ts')).HttpService)!.ports.https!;
  });
  after(async () => {
    await ts.stop();
    notACa.close();
  });

  it('answers acme-tls/1 with the challenge certificate and others with the server one', async () => {
    const authz = { identifier: { type: 'dns', value: 'localhost' } } as Parameters<
      typeof acme.crypto.createAlpnCertificate
    >[0];
    const [key, cert] = await acme.crypto.createAlpnCertificate(authz, 'token.thumbprint');
    ts.server.acmeChallenges.setTls('localhost', cert.toString(), key.toString());
    try {
      const validator = await handshake(port, ['acme-tls/1']);
      assert.equal(validator.protocol, 'acme-tls/1');
      assert.ok(
        acme.crypto.isAlpnCertificateAuthorizationValid(validator.cert.toString(), 'token.thumbprint'),
      );
      const browser = await handshake(port, ['http/1.1']);
      assert.equal(
        browser.cert.fingerprint256,
        new X509Certificate(ts.server.certs.pairs.get('localhost')!.cert).fingerprint256,
      );
      const plain = await handshake(port);
      assert.equal(plain.cert.fingerprint256, browser.cert.fingerprint256);
    } finally {
      ts.server.acmeChallenges.deleteTls('localhost');
    }
  });

  it('keeps serving its current certificate when the CA cannot be reached, and says why', async () => {
    const deadline = Date.now() + 30_000;
    while (!ts.logs.some((l) => /certificate order failed/.test(l))) {
      assert.ok(Date.now() < deadline, ts.logs.slice(-10).join('\n'));
      await new Promise((r) => setTimeout(r, 50));
    }
    const status = await ts.server.statusSections.collect();
    assert.match(String(status.acme!.lastError), /404/);
    const { cert } = await handshake(port);
    assert.ok(cert.checkIssued(cert), 'still the self-signed certificate');
  });
});
