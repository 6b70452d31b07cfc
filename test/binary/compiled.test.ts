// The production runtime is the compiled JavaScript (`npm run build`, run by
// `npm install` as the prepare script), not tsx: laid out as an installed
// package (bin/, dist/, package.json, node_modules without tsx or
// typescript), `jabberfly` starts from dist/ and serves a real client.
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { connect } from '../helpers/xmpp-client.ts';
import '../helpers/server.ts'; // accepts the generated self-signed certificate

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DEV_ONLY = new Set(['tsx', 'typescript', 'esbuild', '@esbuild', '.bin']);

function run(args: string[], cwd?: string) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, args, { cwd }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('compiled runtime', { timeout: 300_000 }, () => {
  let pkg: string;
  let bin: string;
  let config: string;
  let server: ChildProcess | undefined;

  before(async () => {
    pkg = mkdtempSync(join(tmpdir(), 'jabberfly-compiled-'));
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    // --noCheck: the same output without the type check (npm run typecheck does that).
    const built = await run([
      tsc,
      '-p',
      join(ROOT, 'tsconfig.build.json'),
      '--noCheck',
      '--outDir',
      join(pkg, 'dist'),
    ]);
    assert.equal(built.code, 0, built.stdout + built.stderr);
    mkdirSync(join(pkg, 'bin'));
    copyFileSync(join(ROOT, 'bin', 'jabberfly.js'), join(pkg, 'bin', 'jabberfly.js'));
    copyFileSync(join(ROOT, 'package.json'), join(pkg, 'package.json'));
    mkdirSync(join(pkg, 'node_modules'));
    for (const name of readdirSync(join(ROOT, 'node_modules'))) {
      if (!DEV_ONLY.has(name)) symlinkSync(join(ROOT, 'node_modules', name), join(pkg, 'node_modules', name));
    }
    bin = join(pkg, 'bin', 'jabberfly.js');
    config = join(pkg, 'jabberfly.yaml');
    writeFileSync(
      config,
      [
        'listen: ["127.0.0.1"]',
        `storage: { path: "${join(pkg, 'storage')}" }`,
        `tls: { dir: "${join(pkg, 'certs')}" }`,
        'c2s: { port: 0, directTlsPort: false }',
        's2s: { port: false }',
        'http: { port: false }',
        'https: { port: false }',
        'msn: { enabled: false }',
      ].join('\n'),
    );
  });
  after(async () => {
    if (server && server.exitCode === null) {
      const gone = new Promise((r) => server!.once('exit', r));
      server.kill('SIGTERM');
      await gone;
    }
    rmSync(pkg, { recursive: true, force: true });
  });

  it('runs from dist/ with no tsx installed', async () => {
    const v = await run([bin, '--version']);
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, /^\d+\.\d+\.\d+\n$/);
    assert.equal(
      (await run([bin, 'adduser', 'ann@localhost', '--password', 'pw', '--config', config])).code,
      0,
    );
    server = spawn(process.execPath, [bin, 'start', '--config', config], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const onData = (d: Buffer) => {
        out += d;
        if (/accounts?\. /.test(out)) resolve();
      };
      server!.stdout!.on('data', onData);
      server!.stderr!.on('data', onData);
      server!.once('exit', (code) => reject(new Error(`exited with ${code}: ${out}`)));
    });
    assert.doesNotMatch(out, /tsx/);
    const port = Number(/XMPP clients +localhost:(\d+)/.exec(out)![1]);
    const c = await connect({ port, username: 'ann', password: 'pw' });
    await c.stop();
  });
});
