// The README's first steps, read literally: `npm start` in the project, then
// `npx jabberfly adduser alice@localhost` in a second shell while it runs,
// typing the password at a terminal. Only the configuration differs (loopback,
// free ports, a temp store: JABBERFLY_CONFIG), as the tests' house rules ask.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { writeSiteConfig } from '../helpers/cli.ts';
import { runOnPty } from '../helpers/pty.ts';
import { connect } from '../helpers/xmpp-client.ts';
import '../helpers/server.ts'; // accepts the generated self-signed certificate

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('first run: npm start, then npx jabberfly adduser in a second shell', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let npmStart: ChildProcess;
  let output = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jabberfly-first-run-'));
    const config = writeSiteConfig(dir, [
      'c2s: { port: 0, directTlsPort: 0 }',
      's2s: { port: 0 }',
      'http: { port: 0 }',
      'https: { port: 0 }',
    ]);
    env = { ...process.env, JABBERFLY_CONFIG: config };
    // Its own process group, so the test stops npm and the server it ran (by this PID) together.
    npmStart = spawn('npm', ['start'], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      const onData = (d: Buffer) => {
        output += d;
        if (/then log in as alice@localhost/.test(output)) resolve();
      };
      npmStart.stdout!.on('data', onData);
      npmStart.stderr!.on('data', onData);
      npmStart.on('exit', (code) => reject(new Error(`npm start exited with ${code}: ${output}`)));
    });
  });
  after(async () => {
    if (npmStart.exitCode === null) {
      const gone = new Promise((r) => npmStart.once('exit', r));
      process.kill(-npmStart.pid!, 'SIGTERM');
      await gone;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints a banner with the addresses, the web client, the first step and the transport state', () => {
    assert.match(output, /jabberfly \d+\.\d+\.\d+ is serving localhost/);
    assert.match(output, /XMPP clients +localhost:\d+ \(STARTTLS\), localhost:\d+ \(direct TLS\)/);
    assert.match(output, /web client +https:\/\/localhost:\d+\//);
    assert.match(output, /federation +port \d+/);
    assert.match(output, /MSN transport +msn\.localhost, NOT CONFIGURED: set msn\.server/);
    assert.match(output, /config +.*jabberfly\.yaml/);
    assert.match(output, /certificates +.*certs \(self-signed\)/);
    assert.match(output, /store +.*storage/);
    assert.match(
      output,
      /No accounts yet\. In a second terminal, add the first one:\n {2}npx jabberfly adduser alice@localhost\n/,
    );
  });

  it('the command the banner shows adds alice while the server runs, and she logs in', async () => {
    const r = await runOnPty({
      argv: ['npx', 'jabberfly', 'adduser', 'alice@localhost'],
      cwd: ROOT,
      env: { JABBERFLY_CONFIG: env.JABBERFLY_CONFIG! },
      script: [
        ['Password: ', 'first-steps\r'],
        ['Retype password: ', 'first-steps\r'],
      ],
    });
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /created alice@localhost/);
    const port = Number(/XMPP clients +localhost:(\d+)/.exec(output)![1]);
    const alice = await connect({ port, username: 'alice', password: 'first-steps' });
    await alice.stop();
  });
});
