// `jabberfly cert import DIR`: certificates laid out as certbot leaves them
// (live/NAME/fullchain.pem + privkey.pem) are taken into tls.dir, and the
// running server serves them on its next connection, with no restart.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { generateSelfSigned } from '../../src/tls/certs.ts';
import { exited, runCli, startCli } from '../helpers/cli.ts';
import { freePort } from '../acme/pebble.ts';

function fingerprint(port: number, servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false }, () => {
      const f = s.getPeerX509Certificate()!.fingerprint256;
      s.end();
      resolve(f);
    });
    s.on('error', reject);
  });
}

describe('jabberfly cert import', () => {
  let dir: string;
  let config: string;
  let port: number;
  let server: ChildProcess;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jabberfly-import-'));
    port = await freePort();
    config = join(dir, 'jabberfly.yaml');
    writeFileSync(
      config,
      [
        'domain: import.test',
        'listen: ["127.0.0.1"]',
        `storage: { path: "${join(dir, 'storage')}" }`,
        `tls: { dir: "${join(dir, 'certs')}" }`,
        `c2s: { port: false, directTlsPort: ${port} }`,
        's2s: { port: false }',
        'http: { port: false }',
        'https: { port: false }',
      ].join('\n'),
    );
    server = (await startCli(['--config', config])).child;
  });
  after(async () => {
    server.kill('SIGTERM');
    await exited(server);
    rmSync(dir, { recursive: true, force: true });
  });

  it("imports certbot's live folder into the running server", async () => {
    const before = await fingerprint(port, 'import.test');
    const live = join(dir, 'letsencrypt', 'live', 'import.test');
    mkdirSync(live, { recursive: true });
    generateSelfSigned(join(live, 'fullchain.pem'), join(live, 'privkey.pem'), [
      'import.test',
      'msn.import.test',
    ]);
    const r = await runCli(['cert', 'import', join(dir, 'letsencrypt', 'live'), '--config', config]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /imported import\.test \(for import\.test, msn\.import\.test; valid until \d{4}-\d\d-\d\d\) from .*fullchain\.pem/,
    );
    assert.match(r.stdout, /the running server has loaded them/);
    const expected = new X509Certificate(readFileSync(join(live, 'fullchain.pem'))).fingerprint256;
    assert.notEqual(before, expected);
    assert.equal(await fingerprint(port, 'import.test'), expected);
    assert.equal(await fingerprint(port, 'msn.import.test'), expected);
    assert.equal(statSync(join(dir, 'certs', 'import.test.key')).mode & 0o777, 0o600);
  });

  it('says which names nothing in the folder covers, and fails when nothing fits', async () => {
    const other = join(dir, 'other');
    mkdirSync(other);
    generateSelfSigned(join(other, 'elsewhere.org.crt'), join(other, 'elsewhere.org.key'), ['elsewhere.org']);
    const r = await runCli(['cert', 'import', other, '--config', config]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /not covered: import\.test/);
    assert.match(r.stdout, /not covered: msn\.import\.test/);
  });
});
