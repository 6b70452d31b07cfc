// Changing accounts and sessions of a running server from a second shell
// (the admin socket), then the same commands on the store once it is stopped.
// (Split from admin-running.test.ts to keep each file short on a loaded machine.)
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exited, runCli, startCliServer } from '../helpers/cli.ts';
import { rawLogin } from '../helpers/raw-socket.ts';
import { connect } from '../helpers/xmpp-client.ts';
import '../helpers/server.ts'; // accepts the generated self-signed certificate
import type { ChildProcess } from 'node:child_process';

const STREAMS = 'urn:ietf:params:xml:ns:xmpp-streams';

describe('admin commands changing a running server', () => {
  let dir: string;
  let config: string;
  let port: number;
  let server: ChildProcess;
  const cli = (...args: string[]) => runCli([...args, '--config', config]);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jabberfly-admin2-'));
    ({ config, port, child: server } = await startCliServer(dir));
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
});
