// The generated certificate covers every domain the server answers for
// (the user domain, msn.<domain>, conference.<domain>); a certificate made
// before a service was enabled is left alone and the new name gets a pair
// of its own.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Logger } from '../../src/log.ts';
import { Certificates, generateSelfSigned } from '../../src/tls/certs.ts';

describe('certificate names', () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'jabberfly-certs-'));
    dirs.push(d);
    return d;
  };
  const log = new Logger('silent');
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('a fresh certificate names the domain and every service domain', () => {
    const dir = tempDir();
    Certificates.load(dir, 'example.org', ['msn.example.org', 'conference.example.org'], log);
    const cert = new X509Certificate(readFileSync(join(dir, 'example.org.crt')));
    for (const name of ['example.org', 'msn.example.org', 'conference.example.org']) {
      assert.equal(cert.checkHost(name), name, `covers ${name}`);
    }
    assert.equal(cert.checkHost('upload.example.org'), undefined);
  });

  it('an older certificate is kept and a name it lacks gets its own', () => {
    const dir = tempDir();
    generateSelfSigned(join(dir, 'example.org.crt'), join(dir, 'example.org.key'), [
      'example.org',
      'msn.example.org',
    ]);
    const before = readFileSync(join(dir, 'example.org.crt'), 'utf8');
    const certs = Certificates.load(dir, 'example.org', ['msn.example.org', 'conference.example.org'], log);
    assert.equal(
      readFileSync(join(dir, 'example.org.crt'), 'utf8'),
      before,
      'the main certificate is untouched',
    );
    const own = new X509Certificate(readFileSync(join(dir, 'conference.example.org.crt')));
    assert.equal(own.checkHost('conference.example.org'), 'conference.example.org');
    assert.ok(certs.pairs.has('conference.example.org'), 'loaded and chosen by SNI');
    // Loading again generates nothing new.
    const made = readFileSync(join(dir, 'conference.example.org.crt'), 'utf8');
    Certificates.load(dir, 'example.org', ['msn.example.org', 'conference.example.org'], log);
    assert.equal(readFileSync(join(dir, 'conference.example.org.crt'), 'utf8'), made);
  });
});
