// Built-in ACME against Debian's pebble on loopback: a certificate for the
// domain and its service domains through HTTP-01 (the http service), renewed
// in the background and loaded without restart or SIGHUP; and one through
// TLS-ALPN-01 (the https listener), with ordinary TLS clients served as
// before while the challenge is open.
import assert from 'node:assert/strict';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { servedDomains } from '../../src/config/domains.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { freePort, type Pebble, startPebble } from './pebble.ts';

const DOMAIN = 'jabberfly.test';

/** The certificate a TLS client verifying against `ca` is shown for `servername`. */
function served(port: number, servername: string, ca: string): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername, ca, rejectUnauthorized: true }, () => {
      const cert = s.getPeerCertificate();
      s.end();
      resolve(cert);
    });
    s.on('error', reject);
  });
}

/** Resolves when the server has logged `pattern` `count` times in all. */
function logged(ts: TestServer, pattern: RegExp, count = 1, ms = 60_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + ms;
    const poll = () => {
      if (ts.logs.filter((l) => pattern.test(l)).length >= count) return resolve();
      const failure = ts.logs.find((l) => /certificate order failed/.test(l));
      if (failure) return reject(new Error(failure));
      if (Date.now() > deadline)
        return reject(new Error(`not logged: ${pattern}\n${ts.logs.slice(-20).join('\n')}`));
      setTimeout(poll, 50);
    };
    poll();
  });
}

describe('ACME against pebble', { timeout: 240_000 }, () => {
  let pebble: Pebble;
  let root: string;
  let httpPort: number;
  let httpsPort: number;
  let ts: TestServer | undefined;

  before(async () => {
    httpPort = await freePort();
    httpsPort = await freePort();
    pebble = await startPebble({ httpPort, tlsPort: httpsPort });
    root = await pebble.root();
  });
  after(async () => {
    await ts?.stop();
    await pebble?.stop();
  });

  it('HTTP-01: issues a certificate for the domain and msn., loads it on every listener, renews it in the background', async () => {
    ts = await startServer({
      domain: DOMAIN,
      msn: { enabled: true },
      http: { port: httpPort },
      https: { port: httpsPort },
      acme: {
        enabled: true,
        directory: pebble.directory,
        caFile: pebble.caFile,
        email: 'admin@jabberfly.test',
        challenges: ['http-01'],
        // Always due: every check (each second) orders again, to watch renewal happen.
        renewDays: 36500,
        checkInterval: 1,
      },
    });
    await logged(ts, /certificate obtained and loaded/);
    const first = await served(httpsPort, DOMAIN, root);
    assert.equal(first.subject.CN, DOMAIN);
    assert.match(String(first.subjectaltname), /DNS:jabberfly\.test/);
    // Every served domain (msn., conference., ... as configured) is on it.
    const names = servedDomains(ts.config);
    assert.ok(names.includes(`msn.${DOMAIN}`));
    for (const name of names) assert.match(String(first.subjectaltname), new RegExp(`DNS:${name.replace(/\./g, '\\.')}(,|$)`));
    // The client port took it too (SNI for the transport's name as well).
    const c2s = await served(ts.directTlsPort, `msn.${DOMAIN}`, root);
    assert.equal(c2s.serialNumber, first.serialNumber);

    await logged(ts, /certificate obtained and loaded/, 2);
    const renewed = await served(httpsPort, DOMAIN, root);
    assert.notEqual(renewed.serialNumber, first.serialNumber);
    const status = await ts.server.statusSections.collect();
    assert.equal(status.acme!.lastError, null);
    assert.deepEqual(status.acme!.names, names);
  });

  it('TLS-ALPN-01: validates on the https listener', async () => {
    // The first server (if a failure left it running) gives the ports back.
    await ts?.stop();
    ts = await startServer({
      domain: DOMAIN,
      http: { port: false },
      https: { port: httpsPort },
      acme: {
        enabled: true,
        directory: pebble.directory,
        caFile: pebble.caFile,
        challenges: ['tls-alpn-01'],
      },
    });
    await logged(ts, /certificate obtained and loaded/);
    assert.ok(ts.logs.some((l) => /challenge open type=tls-alpn-01/.test(l)));
    const cert = await served(httpsPort, DOMAIN, root);
    assert.equal(cert.subject.CN, DOMAIN);
    // The order's account is kept: a later order reuses it.
    const status = await ts.server.statusSections.collect();
    assert.equal(status.acme!.lastError, null);
  });
});
