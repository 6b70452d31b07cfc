// `npm run build:binary` makes one file that runs anywhere on linux-x64:
// copied alone into an empty folder (no node, no node_modules beside it),
// it starts, a real client logs in, and an avatar goes through sharp inside
// it (the vCard PHOTO a user sets is converted to a 96×96 PNG for MSN, and
// an MSN buddy fetches it), while the web client is served from the
// Converse.js files it carries.
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { xml } from '@xmpp/client';
import sharp from 'sharp';
import { MsnSession } from '../../src/msnp/index.ts';
import { MsnSimulator, type SimulatorEndpoints } from '../msn-sim/simulator.ts';
import { nextEvent } from '../gateway/msn-harness.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';
import '../helpers/server.ts'; // accepts the generated self-signed certificate

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function run(file: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(file, args, { ...opts, maxBuffer: 1 << 22 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

function get(port: number, path: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, rejectUnauthorized: false, servername: 'localhost' },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('single executable', { timeout: 300_000 }, () => {
  let work: string;
  let folder: string;
  let exe: string;
  let env: NodeJS.ProcessEnv;
  let sim: MsnSimulator;
  let endpoints: SimulatorEndpoints;
  let server: ChildProcess | undefined;
  let output = '';
  let juliet: TestClient | undefined;
  let bob: MsnSession | undefined;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'jabberfly-binary-'));
    const built = await run(process.execPath, [
      join(ROOT, 'scripts', 'build-binary.mjs'),
      '--out',
      join(work, 'build', 'jabberfly'),
    ]);
    assert.equal(built.code, 0, built.stderr);
    // An empty folder with nothing but the executable and its configuration.
    folder = join(work, 'site');
    mkdirSync(folder);
    exe = join(folder, 'jabberfly');
    copyFileSync(join(work, 'build', 'jabberfly'), exe);
    statSync(exe);
    sim = new MsnSimulator();
    sim.addAccount('juliet@hotmail.com', 'julietpw', { nickname: 'Juliet' });
    sim.addAccount('bob@hotmail.com', 'bobpw', { nickname: 'Bob' });
    sim.makeFriends('juliet@hotmail.com', 'bob@hotmail.com');
    endpoints = await sim.start();
    writeFileSync(
      join(folder, 'jabberfly.yaml'),
      [
        'listen: ["127.0.0.1"]',
        'c2s: { port: 0, directTlsPort: false }',
        's2s: { port: false }',
        'http: { port: false }',
        'https: { port: 0 }',
        `msn: { server: "127.0.0.1:${endpoints.dispatchPort}", nexus: "${endpoints.nexusUrl}" }`,
      ].join('\n'),
    );
    // No node on PATH, no NODE_PATH, a HOME of its own (the extracted addons go under it).
    env = { PATH: '/usr/bin:/bin', HOME: folder };
  });
  after(async () => {
    await juliet?.stop();
    await bob?.logout().catch(() => {});
    if (server && server.exitCode === null) {
      server.kill('SIGKILL');
      await new Promise((r) => server!.once('exit', r));
    }
    await sim?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('is one file with no node_modules beside it', () => {
    assert.deepEqual(readdirSync(folder).sort(), ['jabberfly', 'jabberfly.yaml']);
    const mib = statSync(exe).size / 1048576;
    assert.ok(mib > 50 && mib < 250, `${mib.toFixed(1)} MiB`);
  });

  it('starts, adds a user over its admin socket, and serves the carried web client', async () => {
    server = spawn(exe, ['start'], { cwd: folder, env, stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      const onData = (d: Buffer) => {
        output += d;
        if (/No accounts yet/.test(output)) resolve();
      };
      server!.stdout!.on('data', onData);
      server!.stderr!.on('data', onData);
      server!.once('exit', (code) => reject(new Error(`exited with ${code}: ${output}`)));
    });
    assert.doesNotMatch(output, /Warning/);
    // The first step names the executable as it was run.
    assert.ok(output.includes(`${exe} adduser alice@localhost`), output);
    const added = await run(exe, ['adduser', 'juliet@localhost', '--password', 'pw'], { cwd: folder, env });
    assert.equal(added.code, 0, added.stderr);
    const https = Number(/web client +https:\/\/localhost:(\d+)\//.exec(output)![1]);
    const page = await get(https, '/');
    assert.equal(page.status, 200);
    assert.match(page.body.toString(), /converse\.min\.css/);
    const script = await get(https, '/converse/converse.min.js');
    assert.equal(script.status, 200);
    assert.ok(script.body.length > 100_000);
  });

  it('logs a real client in, and converts its avatar with sharp for MSN', async () => {
    const port = Number(/XMPP clients +localhost:(\d+) \(STARTTLS\)/.exec(output)![1]);
    const c = await connect({ port, username: 'juliet', password: 'pw', resource: 'desk' });
    juliet = c;
    await c.send(xml('iq', { type: 'get', id: 'roster' }, xml('query', { xmlns: 'jabber:iq:roster' })));
    await c.waitFor((s) => s.attrs.id === 'roster', 'roster');
    await c.send(xml('presence'));
    await c.send(
      xml(
        'iq',
        { type: 'set', id: 'reg', to: 'msn.localhost' },
        xml(
          'query',
          { xmlns: 'jabber:iq:register' },
          xml('username', {}, 'juliet@hotmail.com'),
          xml('password', {}, 'julietpw'),
        ),
      ),
    );
    const reg = await c.waitFor((s) => s.attrs.id === 'reg', 'registration', 20000);
    assert.equal(reg.attrs.type, 'result', reg.toString());
    await c.waitFor(
      (s) => s.is('presence') && s.attrs.from === 'msn.localhost' && !s.attrs.type,
      'gateway online',
      20000,
    );

    bob = new MsnSession({
      email: 'bob@hotmail.com',
      password: 'bobpw',
      server: `127.0.0.1:${endpoints.nsPort}`,
      nexusUrl: endpoints.nexusUrl,
      reconnect: { enabled: false },
    });
    bob.on('error', () => {});
    await bob.login();

    const jpeg = await sharp({
      create: { width: 320, height: 240, channels: 3, background: { r: 200, g: 30, b: 90 } },
    })
      .jpeg()
      .toBuffer();
    await c.send(
      xml(
        'iq',
        { type: 'set', id: 'vc' },
        xml(
          'vCard',
          { xmlns: 'vcard-temp' },
          xml('PHOTO', {}, xml('TYPE', {}, 'image/jpeg'), xml('BINVAL', {}, jpeg.toString('base64'))),
        ),
      ),
    );
    assert.equal((await c.waitFor((s) => s.attrs.id === 'vc', 'vCard set')).attrs.type, 'result');
    const pictured = nextEvent(
      bob,
      'avatar',
      (a) => a.email === 'juliet@hotmail.com' && !!a.msnObject,
      20000,
    );
    const { createHash } = await import('node:crypto');
    const hash = createHash('sha1').update(jpeg).digest('hex');
    await c.send(xml('presence', {}, xml('x', { xmlns: 'vcard-temp:x:update' }, xml('photo', {}, hash))));
    await pictured;
    const picture = await bob.fetchAvatar('juliet@hotmail.com');
    const meta = await sharp(picture).metadata();
    assert.equal(meta.format, 'png');
    assert.equal(meta.width, 96);
    assert.equal(meta.height, 96);
  });

  it('stops cleanly on SIGTERM', async () => {
    const exited = new Promise<number | null>((r) => server!.once('exit', (code) => r(code)));
    server!.kill('SIGTERM');
    assert.equal(await exited, 0);
  });
});
