// OpenPGP for XMPP (XEP-0373/0374) with Debian's go-sendxmpp: each user
// generates a key and publishes it to PEP (public key nodes, open access
// by publish-options), then one sends an encrypted message that the
// other, listening, decrypts: the sender found the recipient's key in PEP.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RosterStore } from '../../src/storage/roster.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const PASSPHRASE = 'ox-test-passphrase';

describe('OpenPGP for XMPP (go-sendxmpp --ox) over PEP', { timeout: 180_000 }, () => {
  let ts: TestServer;
  const homes: Record<string, string> = {};
  const procs: ChildProcess[] = [];

  before(async () => {
    ts = await startServer();
    for (const u of ['alice', 'bob']) {
      await ts.addUser(u, `${u}-pw`);
      homes[u] = mkdtempSync(join(tmpdir(), `jabberfly-ox-${u}-`));
    }
    const rosters = ts.server.store(RosterStore);
    await rosters.setItem('alice@localhost', { jid: 'bob@localhost', subscription: 'both', groups: [] });
    await rosters.setItem('bob@localhost', { jid: 'alice@localhost', subscription: 'both', groups: [] });
  });

  after(async () => {
    for (const p of procs) if (p.exitCode === null) p.kill();
    await ts?.stop();
    for (const h of Object.values(homes)) rmSync(h, { recursive: true, force: true });
  });

  /** go-sendxmpp as `user` (its keys under its own HOME), certificate checks off for the test CA. */
  function gosendxmpp(user: string, args: string[]): ChildProcess {
    const p = spawn(
      '/usr/bin/go-sendxmpp',
      ['-u', `${user}@localhost`, '-p', `${user}-pw`, '-j', `127.0.0.1:${ts.port}`, '-n', '--ox-passphrase', PASSPHRASE, ...args],
      { env: { ...process.env, HOME: homes[user] } },
    );
    procs.push(p);
    return p;
  }

  function finished(p: ChildProcess): Promise<{ code: number | null; output: string }> {
    let output = '';
    p.stdout!.on('data', (d) => (output += d));
    p.stderr!.on('data', (d) => (output += d));
    return new Promise((resolve) => p.on('exit', (code) => resolve({ code, output })));
  }

  it('publishes keys to PEP and carries an encrypted message the recipient decrypts', async () => {
    for (const u of ['alice', 'bob']) {
      const r = await finished(gosendxmpp(u, ['--ox-genprivkey-x25519']));
      assert.equal(r.code, 0, r.output);
      const nodes = await ts.server.storage.pubsub('pep').nodes(`${u}@localhost`);
      const list = nodes.find((n) => n.node === 'urn:xmpp:openpgp:0:public-keys');
      assert.ok(list, `${u} published a public key list`);
      assert.equal(list.config.accessModel, 'open');
      assert.ok(nodes.some((n) => n.node.startsWith('urn:xmpp:openpgp:0:public-keys:')), `${u} published a key`);
    }

    // Bob listens; once his client is available, Alice sends.
    const host = ts.server.hosts.get('localhost')!;
    const bobOnline = new Promise<void>((resolve) => {
      const unhook = host.hook(
        'pre-presence/self',
        (e) => {
          if (e.from.bare === 'bob@localhost' && e.stanza.attrs.type === undefined) {
            unhook();
            resolve();
          }
          return false;
        },
        2000,
      );
    });
    const listener = gosendxmpp('bob', ['-l', '--ox']);
    let heard = '';
    const decrypted = new Promise<string>((resolve, reject) => {
      listener.stdout!.on('data', (d) => {
        heard += d;
        const line = heard.split('\n').find((l) => l.includes('[OX]'));
        if (line) resolve(line);
      });
      listener.on('exit', () => reject(new Error(`listener exited: ${heard}`)));
    });
    await bobOnline;
    const sender = gosendxmpp('alice', ['--ox', 'bob@localhost']);
    sender.stdin!.end('the orchard at midnight\n');
    const sent = await finished(sender);
    assert.equal(sent.code, 0, sent.output);
    const line = await Promise.race([
      decrypted,
      new Promise<string>((_, reject) => setTimeout(() => reject(new Error(`no decrypted message; heard: ${heard}`)), 60_000)),
    ]);
    assert.match(line, /\[OX\] alice@localhost: the orchard at midnight/);
  });
});
