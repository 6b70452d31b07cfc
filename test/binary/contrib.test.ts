// What ships for running jabberfly as a service: the systemd unit passes
// `systemd-analyze verify` and is hardened (`systemd-analyze security`
// rates it), and the Dockerfile copies only what exists, with a default
// configuration jabberfly accepts. (No Docker engine runs here.)
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfigFile } from '../../src/config/load.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const UNIT = readFileSync(join(ROOT, 'contrib', 'jabberfly.service'), 'utf8');

function analyze(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('systemd-analyze', args, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
    );
  });
}

describe('contrib: systemd unit and Dockerfile', () => {
  let dir: string;
  let unit: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'jabberfly-contrib-'));
    // verify checks that ExecStart exists: point it at a stand-in, the one line changed.
    const exe = join(dir, 'jabberfly');
    writeFileSync(exe, '#!/bin/sh\n');
    chmodSync(exe, 0o755);
    const copy = UNIT.replace(/^ExecStart=\/usr\/local\/bin\/jabberfly /m, `ExecStart=${exe} `);
    assert.notEqual(copy, UNIT);
    unit = join(dir, 'jabberfly.service');
    writeFileSync(unit, copy);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('passes systemd-analyze verify', async () => {
    const r = await analyze(['verify', unit]);
    assert.equal(r.code, 0, r.out);
    assert.equal(r.out.trim(), '');
  });

  it('is hardened: dynamic user, read-only system, low exposure score', async () => {
    for (const line of [
      'DynamicUser=yes',
      'ProtectSystem=strict',
      'ProtectHome=yes',
      'NoNewPrivileges=yes',
      'PrivateTmp=yes',
    ]) {
      assert.match(UNIT, new RegExp(`^${line}$`, 'm'), line);
    }
    const r = await analyze(['security', '--offline=yes', unit]);
    const score = Number(/Overall exposure level for jabberfly\.service: ([\d.]+)/.exec(r.out)?.[1]);
    assert.ok(score <= 2.5, `exposure ${score}: ${r.out.slice(-500)}`);
  });

  it('Dockerfile: every file it copies from the context exists; its config loads', () => {
    const docker = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    const copies = [...docker.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1]!.split(/\s+/));
    assert.ok(copies.length >= 4);
    for (const f of copies) assert.ok(existsSync(join(ROOT, f)), `COPY ${f}`);
    const config = loadConfigFile(join(ROOT, 'contrib', 'docker-jabberfly.yaml'));
    assert.equal(config.storage.path, '/data/storage');
    assert.equal(config.tls.dir, '/data/certs');
    assert.match(docker, /^USER node$/m);
  });
});
