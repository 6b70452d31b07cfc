// `jabberfly check` on a good set-up (running server, DNS records as
// advised) and on a broken one (a certificate that does not name the
// transport, an expired one, SRV records at the wrong port, a missing
// address, a port taken by another program), and on a configuration that
// does not load. DNS answers come from a fake DNS server on loopback.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateSelfSigned } from '../../src/tls/certs.ts';
import { exited, runCli, startCli } from '../helpers/cli.ts';
import { FakeDns } from '../s2s/fake-dns.ts';
import { freePort } from '../acme/pebble.ts';

/** NAME.crt + NAME.key valid only in January 2020 (openssl 3.0's `req` cannot backdate: `ca` can). */
function expiredCertificate(dir: string, name: string): void {
  const ca = mkdtempSync(join(tmpdir(), 'jabberfly-oldca-'));
  try {
    writeFileSync(join(ca, 'index.txt'), '');
    writeFileSync(join(ca, 'serial'), '01\n');
    writeFileSync(
      join(ca, 'ca.cnf'),
      `[ca]\ndefault_ca = d\n[d]\ndatabase = ${ca}/index.txt\nnew_certs_dir = ${ca}\nserial = ${ca}/serial\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n`,
    );
    const key = join(dir, `${name}.key`);
    const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
    openssl([
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      key,
      '-out',
      join(ca, 'r.csr'),
    ]);
    openssl([
      'ca',
      '-batch',
      '-selfsign',
      '-config',
      join(ca, 'ca.cnf'),
      '-keyfile',
      key,
      '-in',
      join(ca, 'r.csr'),
      '-out',
      join(dir, `${name}.crt`),
      '-startdate',
      '20200101000000Z',
      '-enddate',
      '20200201000000Z',
    ]);
  } finally {
    rmSync(ca, { recursive: true, force: true });
  }
}

describe('jabberfly check', () => {
  let dir: string;
  let dns: FakeDns;
  let c2s: number;
  let s2s: number;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jabberfly-check-'));
    [c2s, s2s] = [await freePort(), await freePort()];
    dns = await FakeDns.start({
      srv: {
        '_xmpp-client._tcp.good.test': [{ priority: 0, weight: 5, port: c2s, target: 'good.test' }],
        '_xmpp-server._tcp.good.test': [{ priority: 0, weight: 5, port: s2s, target: 'good.test' }],
        '_xmpp-client._tcp.bad.test': [{ priority: 0, weight: 5, port: 1, target: 'bad.test' }],
      },
      a: { 'good.test': '127.0.0.1', 'msn.good.test': '127.0.0.1' },
    });
  });
  after(async () => {
    await dns.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function config(name: string, lines: string[]): string {
    const root = join(dir, name);
    mkdirSync(join(root, 'certs'), { recursive: true });
    const file = join(root, 'jabberfly.yaml');
    writeFileSync(
      file,
      [
        'listen: ["127.0.0.1"]',
        `storage: { path: "${join(root, 'storage')}" }`,
        `tls: { dir: "${join(root, 'certs')}" }`,
        'http: { port: false }',
        'https: { port: false }',
        ...lines,
      ].join('\n'),
    );
    return file;
  }

  it('a good set-up: every check passes while the server runs (exit 0)', async () => {
    const file = config('good', [
      'domain: good.test',
      `c2s: { port: ${c2s}, directTlsPort: false }`,
      `s2s: { port: ${s2s} }`,
      'msn: { server: "127.0.0.1:1863" }',
    ]);
    generateSelfSigned(
      join(dir, 'good', 'certs', 'good.test.crt'),
      join(dir, 'good', 'certs', 'good.test.key'),
      ['good.test', 'msn.good.test'],
    );
    const { child } = await startCli(['--config', file]);
    try {
      const r = await runCli(['check', '--config', file, '--dns', dns.server]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /✓ _xmpp-client\._tcp\.good\.test → good\.test:\d+/);
      assert.match(r.stdout, /✓ _xmpp-server\._tcp\.good\.test → good\.test:\d+/);
      assert.match(r.stdout, /✓ msn\.good\.test → 127\.0\.0\.1/);
      assert.match(r.stdout, new RegExp(`✓ c2s\\.port ${c2s} answers on 127\\.0\\.0\\.1`));
      assert.match(r.stdout, /store +✓ .* is open in the running server/);
      // The key the running server made, outside the store, readable by its user only.
      assert.match(r.stdout, /msn key +✓ .*good\/certs\/transport\.key \(0600\)/);
      assert.match(r.stdout, /! good\.test: self-signed/);
      assert.doesNotMatch(r.stdout, /✗/);
      assert.match(r.stdout, /no problems, \d+ warnings?/);
    } finally {
      child.kill('SIGTERM');
      await exited(child);
    }
  });

  it('a broken set-up: each problem named with what to do (exit 1)', async () => {
    const taken: Server = createServer();
    const busy = await freePort();
    await new Promise<void>((r) => taken.listen(busy, '127.0.0.1', r));
    try {
      const file = config('bad', [
        'domain: bad.test',
        `c2s: { port: ${busy}, directTlsPort: false }`,
        `s2s: { port: ${s2s} }`,
      ]);
      const certs = join(dir, 'bad', 'certs');
      // The domain's certificate does not name msn.bad.test; another one has expired.
      generateSelfSigned(join(certs, 'bad.test.crt'), join(certs, 'bad.test.key'), ['bad.test']);
      expiredCertificate(certs, 'old.bad.test');
      // A key left readable inside the store folder by hand, where older versions kept it, and configured there.
      writeFileSync(file, `${readFileSync(file, 'utf8')}\nmsn: { keyFile: "${join(dir, 'bad', 'storage', 'transport.key')}" }\n`);
      mkdirSync(join(dir, 'bad', 'storage'), { recursive: true });
      writeFileSync(join(dir, 'bad', 'storage', 'transport.key'), Buffer.alloc(32).toString('base64'), { mode: 0o644 });
      const r = await runCli(['check', '--config', file, '--dns', dns.server]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stdout, /✗ msn\.bad\.test: .*bad\.test\.crt is for bad\.test, not msn\.bad\.test/);
      assert.match(r.stdout, /✗ old\.bad\.test: expired on 2020-02-01/);
      assert.match(
        r.stdout,
        /✗ _xmpp-client\._tcp\.bad\.test points at port 1 but the server listens on \d+: change it to '_xmpp-client\._tcp\.bad\.test\. 3600 IN SRV 0 5 \d+ bad\.test\.'/,
      );
      // Not on the standard port, so without SRV other servers cannot find it.
      assert.match(
        r.stdout,
        /✗ no _xmpp-server\._tcp\.bad\.test SRV record .*: add '_xmpp-server\._tcp\.bad\.test\. 3600 IN SRV 0 5 \d+ bad\.test\.'/,
      );
      assert.match(r.stdout, /✗ bad\.test has no A\/AAAA record/);
      assert.match(r.stdout, new RegExp(`✗ c2s\\.port ${busy} is in use by another program`));
      assert.match(r.stdout, /! msn\.server is unset/);
      assert.match(r.stdout, /! .*bad\/storage\/transport\.key can be read by other users \(mode 644\): chmod 600 it/);
      assert.match(r.stdout, /! .*bad\/storage\/transport\.key is inside the store folder: a copy of the store opens the MSN passwords/);
      assert.match(r.stdout, /\d+ problems, \d+ warnings?/);
    } finally {
      taken.close();
    }
  });

  it('a configuration that does not load is the first problem', async () => {
    const file = join(dir, 'typo.yaml');
    writeFileSync(file, 'domian: example.org\n');
    const r = await runCli(['check', '--config', file]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /config +✗ .*unknown configuration key 'domian'/);
  });
});
