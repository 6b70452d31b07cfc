// The admin commands when no server runs (on the store; status and kick say
// so), and a socket file left by a killed server. (admin-running and
// admin-changes cover the running server; one file each keeps every file
// short on a loaded machine.)
import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exited, runCli, startCli, startCliServer } from '../helpers/cli.ts';
import type { ChildProcess } from 'node:child_process';

describe('admin commands once the server stops', () => {
  let dir: string;
  let config: string;
  let server: ChildProcess;
  const cli = (...args: string[]) => runCli([...args, '--config', config]);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jabberfly-admin3-'));
    ({ config, child: server } = await startCliServer(dir));
    const added = await Promise.all([
      cli('adduser', 'alice@localhost', '--password', 'alice-pw'),
      cli('adduser', 'bob@localhost', '--password', 'bob-pw'),
    ]);
    for (const r of added) assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    if (server.exitCode === null) {
      server.kill('SIGTERM');
      await exited(server);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('once stopped: status says so (exit 3), kick refuses, account commands work on the store', async () => {
    server.kill('SIGTERM');
    assert.equal(await exited(server), 0);
    const [status, kick, carol, piped] = await Promise.all([
      cli('status'),
      cli('kick', 'alice@localhost'),
      cli('adduser', 'carol@localhost', '--password', 'carol-pw'),
      // A script piping an empty line is refused too.
      runCli(['adduser', 'dave@localhost', '--config', config], '\n'),
    ]);
    assert.equal(piped.code, 1);
    assert.match(piped.stderr, /empty passwords are not allowed/);
    assert.equal(status.code, 3);
    assert.match(status.stdout, /not running/);
    assert.equal(kick.code, 1);
    assert.match(kick.stderr, /not running/);
    assert.equal(carol.code, 0, carol.stderr);
    assert.deepEqual((await cli('users')).stdout.trim().split('\n'), [
      'alice@localhost',
      'bob@localhost',
      'carol@localhost',
    ]);
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
