// Managing a running server from a second shell (the admin socket): adding
// users at a terminal, listing them, status. (Changes to sessions and the
// stopped server: admin-changes.test.ts.)
import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BIN, exited, runCli, startCliServer } from '../helpers/cli.ts';
import { runOnPty } from '../helpers/pty.ts';
import { connect } from '../helpers/xmpp-client.ts';
import '../helpers/server.ts'; // accepts the generated self-signed certificate
import type { ChildProcess } from 'node:child_process';

describe('admin commands against a running server', () => {
  let dir: string;
  let config: string;
  let port: number;
  let server: ChildProcess;
  const cli = (...args: string[]) => runCli([...args, '--config', config]);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jabberfly-admin-'));
    ({ config, port, child: server } = await startCliServer(dir));
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
    // (Nothing was created: the next test adds bob@localhost, which would fail if it existed.)
  });

  it('users and status show the accounts, sessions and transport of the running server', async () => {
    assert.equal((await cli('adduser', 'bob@localhost', '--password', 'bob-pw')).code, 0);
    const bob = await connect({ port, username: 'bob', password: 'bob-pw', resource: 'laptop' });
    try {
      // Three commands at once, as three administrators might.
      const [users, status, asJson] = await Promise.all([
        cli('users'),
        cli('status'),
        cli('status', '--json'),
      ]);
      assert.equal(users.code, 0, users.stderr);
      assert.deepEqual(users.stdout.trim().split('\n'), ['alice@localhost', 'bob@localhost\t1 session']);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, /^server\n/m);
      assert.match(status.stdout, /uptime: +\d+ (s|min)/);
      assert.match(status.stdout, /^sessions\n {2}total: +1$/m);
      assert.match(status.stdout, /- bob@localhost\/laptop \(tcp, tls, 127\.0\.0\.1\)/);
      assert.match(status.stdout, /^msn\n/m);
      assert.match(status.stdout, /server: +not configured/);
      const json = JSON.parse(asJson.stdout);
      assert.equal(json.running, true);
      assert.equal(json.sessions.total, 1);
      assert.equal(json.msn.domain, 'msn.localhost');
      assert.equal(json.msn.sessions, 0);
    } finally {
      await bob.stop();
    }
  });
});
