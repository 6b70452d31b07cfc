// The `jabberfly` command line as a user runs it.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exited, runCli, startCli } from '../helpers/cli.ts';
import { RawSocket } from '../helpers/raw-socket.ts';
import { connect } from '../helpers/xmpp-client.ts';
import '../helpers/server.ts'; // accepts the generated self-signed certificate

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

describe('jabberfly CLI', () => {
  let dir: string;
  let config: string;
  let port: number;
  let tlsPort: number;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jabberfly-cli-'));
    port = await freePort();
    tlsPort = await freePort();
    config = join(dir, 'jabberfly.yaml');
    writeFileSync(
      config,
      [
        'listen: ["127.0.0.1"]',
        `storage: { path: "${join(dir, 'storage')}" }`,
        `tls: { dir: "${join(dir, 'certs')}" }`,
        `c2s: { port: ${port}, directTlsPort: ${tlsPort} }`,
        's2s: { port: false }',
        'http: { port: false }',
        'https: { port: false }',
        'msn: { enabled: false }',
      ].join('\n'),
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('prints help', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0);
    for (const cmd of ['start', 'adduser', 'passwd', 'deluser', 'users', 'status', 'kick']) assert.match(r.stdout, new RegExp(`jabberfly ${cmd}`));
  });

  it('adds a user (password from stdin), who can then log in; the store holds no password', async () => {
    const r = await runCli(['adduser', 'zoe@localhost', '--config', config], 'Tr0ub4dor&3\n');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /created zoe@localhost/);
    const again = await runCli(['adduser', 'zoe@localhost', '--password', 'x', '--config', config]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already exists/);

    const { child } = await startCli(['--config', config]);
    try {
      // A certificate was generated on first start.
      assert.ok(readdirSync(join(dir, 'certs')).includes('localhost.crt'));
      const c = await connect({ port, username: 'zoe', password: 'Tr0ub4dor&3' });
      assert.match(c.jid, /^zoe@localhost\//);
      await c.stop();
      const direct = await connect({ port: tlsPort, directTls: true, username: 'zoe', password: 'Tr0ub4dor&3' });
      await direct.stop();
    } finally {
      child.kill('SIGTERM');
      assert.equal(await exited(child), 0);
    }
    for (const f of filesUnder(join(dir, 'storage'))) {
      assert.equal(readFileSync(f).includes('Tr0ub4dor'), false, `${f} contains the password`);
    }
  });

  it('changes a password and deletes a user', async () => {
    assert.equal((await runCli(['passwd', 'zoe@localhost', '--password', 'new-pw', '--config', config])).code, 0);
    const { child } = await startCli(['--config', config]);
    try {
      await assert.rejects(connect({ port, username: 'zoe', password: 'Tr0ub4dor&3' }), /not-authorized/);
      const c = await connect({ port, username: 'zoe', password: 'new-pw' });
      await c.stop();
    } finally {
      child.kill('SIGTERM');
      await exited(child);
    }
    assert.equal((await runCli(['deluser', 'zoe@localhost', '--config', config])).code, 0);
    const missing = await runCli(['deluser', 'zoe@localhost', '--config', config]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /does not exist/);
  });

  it('refuses bad JIDs with a clear message', async () => {
    const r = await runCli(['adduser', 'bad user@localhost', '--password', 'x', '--config', config]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /invalid JID/);
    const other = await runCli(['adduser', 'a@elsewhere.org', '--password', 'x', '--config', config]);
    assert.match(other.stderr, /not on this server's domain/);
  });

  it('refuses to start with a typo in the configuration, naming the key', async () => {
    const bad = join(dir, 'typo.yaml');
    writeFileSync(bad, 'domian: example.org\n');
    const r = await runCli(['start', '--config', bad]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /unknown configuration key 'domian'/);
  });

  it('closes client streams cleanly on SIGTERM', async () => {
    await runCli(['adduser', 'yan@localhost', '--password', 'pw', '--config', config]);
    const { child, output } = await startCli(['--config', config]);
    const s = await RawSocket.connect(port);
    s.write("<stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>");
    await s.waitFor(/<\/stream:features>/);
    child.kill('SIGTERM');
    await s.waitFor(/<system-shutdown xmlns="urn:ietf:params:xml:ns:xmpp-streams"\/>.*<\/stream:stream>/s);
    // Its log, if it did not stop cleanly.
    assert.equal(await exited(child), 0, output());
  });
});
