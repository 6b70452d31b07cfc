// Managing a running server from a second shell (the admin socket), and the
// same commands on the store once it is stopped.
import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BIN, exited, runCli, startCli } from '../helpers/cli.ts';
import { runOnPty } from '../helpers/pty.ts';
import { rawLogin } from '../helpers/raw-socket.ts';
import { connect } from '../helpers/xmpp-client.ts';
import '../helpers/server.ts'; // accepts the generated self-signed certificate
import type { ChildProcess } from 'node:child_process';

const STREAMS = 'urn:ietf:params:xml:ns:xmpp-streams';

describe('admin commands against a running server', () => {
  let dir: string;
  let config: string;
  let port: number;
  let server: ChildProcess;
  const cli = (...args: string[]) => runCli([...args, '--config', config]);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jabberfly-admin-'));
    config = join(dir, 'jabberfly.yaml');
    writeFileSync(
      config,
      [
        'listen: ["127.0.0.1"]',
        `storage: { path: "${join(dir, 'storage')}" }`,
        `tls: { dir: "${join(dir, 'certs')}" }`,
        'c2s: { port: 0, directTlsPort: false }',
        's2s: { port: false }',
        'http: { port: false }',
        'https: { port: false }',
        'msn: { enabled: true }',
      ].join('\n'),
    );
    const started = await startCli(['--config', config]);
    server = started.child;
    // The banner names the bound client port.
    const m =
      /XMPP clients\s+localhost:(\d+) \(STARTTLS\)/.exec(started.output()) ??
      (await new Promise<RegExpExecArray>((resolve) => {
        const check = () => {
          const r = /XMPP clients\s+localhost:(\d+) \(STARTTLS\)/.exec(started.output());
          if (r) resolve(r);
          else server.stdout!.once('data', check);
        };
        check();
      }));
    port = Number(m[1]);
  });
  after(async () => {
    if (server.exitCode === null) {
      server.kill('SIGTERM');
      await exited(server);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the admin socket private to the server user (0600)', () => {
    const st = lstatSync(join(dir, 'storage', 'admin.sock'));
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
  });

  it('adduser on a terminal: the password is asked twice and never shown; the user logs in at once', async () => {
    const secret = 'c0rrect-h0rse';
    const r = await runOnPty({
      argv: [process.execPath, BIN, 'adduser', 'alice@localhost', '--config', config],
      script: [
        ['Password: ', `${secret}\r`],
        ['Retype password: ', `${secret}\r`],
      ],
    });
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /created alice@localhost/);
    assert.equal(r.output.includes(secret), false, `the terminal showed the password: ${r.output}`);
    const c = await connect({ port, username: 'alice', password: secret });
    await c.stop();
  });

  it('adduser refuses passwords that differ, and empty ones, creating nothing', async () => {
    const mismatch = await runOnPty({
      argv: [process.execPath, BIN, 'adduser', 'bob@localhost', '--config', config],
      script: [
        ['Password: ', 'one\r'],
        ['Retype password: ', 'two\r'],
      ],
    });
    assert.equal(mismatch.code, 1);
    assert.match(mismatch.output, /passwords do not match/);
    const empty = await runOnPty({
      argv: [process.execPath, BIN, 'adduser', 'bob@localhost', '--config', config],
      script: [['Password: ', '\r']],
    });
    assert.equal(empty.code, 1);
    assert.match(empty.output, /empty passwords are not allowed/);
    const flag = await cli('adduser', 'bob@localhost', '--password', '');
    assert.equal(flag.code, 1);
    assert.match(flag.stderr, /empty passwords are not allowed/);
    const piped = await runCli(['adduser', 'bob@localhost', '--config', config], '\n');
    assert.equal(piped.code, 1);
    assert.match(piped.stderr, /empty passwords are not allowed/);
    const users = await cli('users');
    assert.equal(users.code, 0);
    assert.doesNotMatch(users.stdout, /bob@localhost/);
  });

  it('users and status show the accounts, sessions and transport of the running server', async () => {
    assert.equal((await cli('adduser', 'bob@localhost', '--password', 'bob-pw')).code, 0);
    const bob = await connect({ port, username: 'bob', password: 'bob-pw', resource: 'laptop' });
    try {
      const users = await cli('users');
      assert.equal(users.code, 0, users.stderr);
      assert.deepEqual(users.stdout.trim().split('\n'), ['alice@localhost', 'bob@localhost\t1 session']);
      const status = await cli('status');
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, /^server\n/m);
      assert.match(status.stdout, /uptime: +\d+ (s|min)/);
      assert.match(status.stdout, /^sessions\n {2}total: +1$/m);
      assert.match(status.stdout, /- bob@localhost\/laptop \(tcp, tls, 127\.0\.0\.1\)/);
      assert.match(status.stdout, /^msn\n/m);
      assert.match(status.stdout, /server: +not configured/);
      const json = JSON.parse((await cli('status', '--json')).stdout);
      assert.equal(json.running, true);
      assert.equal(json.sessions.total, 1);
      assert.equal(json.msn.domain, 'msn.localhost');
      assert.equal(json.msn.sessions, 0);
    } finally {
      await bob.stop();
    }
  });

  it('passwd disconnects the sessions (reset) and the new password works', async () => {
    const s = await rawLogin(port, 'bob', 'bob-pw', 'phone');
    try {
      const r = await cli('passwd', 'bob@localhost', '--password', 'bob-new');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /password changed for bob@localhost \(1 session disconnected\)/);
      await s.waitFor(new RegExp(`<stream:error><reset xmlns="${STREAMS}"/>`));
    } finally {
      s.destroy();
    }
    await assert.rejects(connect({ port, username: 'bob', password: 'bob-pw' }), /not-authorized/);
    await (await connect({ port, username: 'bob', password: 'bob-new' })).stop();
  });

  it('kick disconnects one session (full JID) or all of a user (bare JID)', async () => {
    const a = await rawLogin(port, 'bob', 'bob-new', 'a');
    const b = await rawLogin(port, 'bob', 'bob-new', 'b');
    try {
      const one = await cli('kick', 'bob@localhost/a');
      assert.equal(one.code, 0, one.stderr);
      assert.equal(one.stdout.trim(), 'disconnected bob@localhost/a');
      await a.waitFor(new RegExp(`<stream:error><policy-violation xmlns="${STREAMS}"/>`));
      assert.equal(b.closed, false);
      const all = await cli('kick', 'bob@localhost');
      assert.equal(all.stdout.trim(), 'disconnected bob@localhost/b');
      await b.waitFor(new RegExp(`<stream:error><policy-violation xmlns="${STREAMS}"/>`));
      const nobody = await cli('kick', 'bob@localhost');
      assert.equal(nobody.code, 1);
      assert.match(nobody.stderr, /has no session/);
    } finally {
      a.destroy();
      b.destroy();
    }
  });

  it('deluser removes a logged-in user: sessions closed, account gone', async () => {
    const s = await rawLogin(port, 'bob', 'bob-new', 'x');
    try {
      const r = await cli('deluser', 'bob@localhost');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /deleted bob@localhost \(1 session disconnected\)/);
      await s.waitFor(new RegExp(`<stream:error><not-authorized xmlns="${STREAMS}"/>`));
    } finally {
      s.destroy();
    }
    await assert.rejects(connect({ port, username: 'bob', password: 'bob-new' }), /not-authorized/);
    assert.match((await cli('deluser', 'bob@localhost')).stderr, /does not exist/);
  });

  it('once stopped: status says so (exit 3), kick refuses, account commands work on the store', async () => {
    server.kill('SIGTERM');
    assert.equal(await exited(server), 0);
    const status = await cli('status');
    assert.equal(status.code, 3);
    assert.match(status.stdout, /not running/);
    const kick = await cli('kick', 'alice@localhost');
    assert.equal(kick.code, 1);
    assert.match(kick.stderr, /not running/);
    assert.equal((await cli('adduser', 'carol@localhost', '--password', 'carol-pw')).code, 0);
    assert.deepEqual((await cli('users')).stdout.trim().split('\n'), ['alice@localhost', 'carol@localhost']);
  });

  it('a socket left by a killed server does not stop the next start', async () => {
    const again = await startCli(['--config', config]);
    again.child.kill('SIGKILL');
    await exited(again.child);
    assert.ok(lstatSync(join(dir, 'storage', 'admin.sock')).isSocket());
    server = (await startCli(['--config', config])).child;
    const users = await cli('users');
    assert.equal(users.code, 0, users.stderr);
    assert.match(users.stdout, /carol@localhost/);
  });
});
