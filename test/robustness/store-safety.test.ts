// Store safety on the real `jabberfly` command: a store folder that lost
// its metadata (CURRENT missing or corrupt, MANIFEST missing) is refused
// with a message naming the folder, the file and what to do, and nothing in
// it is touched; `repair-storage` brings such a store back; folder 0700 and
// files 0600 (old stores fixed on start); the transport key kept outside the
// store (tls.dir) and moved there from where older versions kept it;
// unusable paths named with their errno; `backup` / `restore` round-trip a
// store used by real clients, and a truncated backup restores nothing.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exited, runCli, startCli, writeSiteConfig } from '../helpers/cli.ts';
import { type RawSocket, rawLogin } from '../helpers/raw-socket.ts';
import { testDatabase } from '../helpers/postgres.ts';
import '../helpers/server.ts'; // accepts the generated self-signed certificate

const mode = (p: string) => statSync(p).mode & 0o777;
/** Name → size of every file in a folder (to show nothing was changed). */
const listing = (dir: string) =>
  Object.fromEntries(
    readdirSync(dir)
      .filter((f) => f !== 'LOCK' && f !== 'LOG')
      .map((f) => [f, statSync(join(dir, f)).size]),
  );

describe('store safety (real jabberfly processes)', () => {
  let root: string;
  const children: ChildProcess[] = [];
  const sockets: RawSocket[] = [];

  /** A config in its own folder: storage/ and certs/ beside it. */
  function site(name: string, extra: string[] = []) {
    const dir = join(root, name);
    mkdirSync(dir);
    const config = writeSiteConfig(dir, [
      'c2s: { port: 0, directTlsPort: false }',
      's2s: { port: false }',
      'http: { port: false }',
      'https: { port: false }',
      'log: { level: info }',
      ...extra,
    ]);
    const cli = (...args: string[]) => runCli([...args, '--config', config]);
    const start = async () => {
      const { child, output } = await startCli(['--config', config]);
      children.push(child);
      const port = Number(/started .*c2s=(\d+)/.exec(output())![1]);
      // The banner's last line is printed once the signal handlers are in place (SIGTERM then stops cleanly).
      await new Promise<void>((resolve, reject) => {
        const deadline = Date.now() + 30_000;
        const check = () => {
          if (/No accounts yet|shows who is online/.test(output())) return resolve();
          if (Date.now() > deadline) return reject(new Error(`no banner: ${output()}`));
          setTimeout(check, 100);
        };
        check();
      });
      const stop = async () => {
        child.kill('SIGTERM');
        assert.equal(await exited(child), 0);
      };
      return { child, output, port, stop };
    };
    return { dir, config, storage: join(dir, 'storage'), certs: join(dir, 'certs'), cli, start };
  }

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'jabberfly-store-safety-'));
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) {
        c.kill('SIGKILL');
        await exited(c);
      }
    }
    rmSync(root, { recursive: true, force: true });
  });

  it('a new store: folder 0700, files 0600, the transport key in tls.dir (0600), not in the store', async () => {
    const s = site('fresh');
    const server = await s.start();
    const added = await s.cli('adduser', 'alice@localhost', '--password', 'pw');
    assert.equal(added.code, 0, added.stderr);
    await server.stop();
    assert.equal(mode(s.storage), 0o700);
    const files = readdirSync(s.storage).filter((f) => statSync(join(s.storage, f)).isFile());
    assert.ok(files.includes('CURRENT') && files.length > 3, files.join(' '));
    for (const f of files) assert.equal(mode(join(s.storage, f)), 0o600, `${f} is ${mode(join(s.storage, f)).toString(8)}`);
    assert.equal(existsSync(join(s.storage, 'transport.key')), false, 'no key in the store folder');
    const key = join(s.certs, 'transport.key');
    assert.equal(mode(key), 0o600);
    assert.equal(Buffer.from(readFileSync(key, 'utf8').trim(), 'base64').length, 32);
  });

  it('an older install: its key moves out of the store (logged, the same key), loose modes are fixed', async () => {
    const s = site('older');
    // A store made the old way: CLI on the stopped store, then the old key file and loose modes.
    assert.equal((await s.cli('adduser', 'alice@localhost', '--password', 'pw')).code, 0);
    const oldKey = randomBytes(32).toString('base64');
    writeFileSync(join(s.storage, 'transport.key'), oldKey, { mode: 0o644 });
    chmodSync(s.storage, 0o755);
    for (const f of readdirSync(s.storage)) chmodSync(join(s.storage, f), 0o644);
    const server = await s.start();
    assert.match(server.output(), /INFO .*moved the transport key out of the store folder/);
    assert.equal(readFileSync(join(s.certs, 'transport.key'), 'utf8'), oldKey, 'the same key, at its new place');
    assert.equal(existsSync(join(s.storage, 'transport.key')), false);
    assert.equal(mode(join(s.certs, 'transport.key')), 0o600);
    assert.equal(mode(s.storage), 0o700);
    for (const f of readdirSync(s.storage)) {
      if (statSync(join(s.storage, f)).isFile()) assert.equal(mode(join(s.storage, f)), 0o600, f);
    }
    await server.stop();
  });

  it('refuses a store folder without CURRENT, with a corrupt CURRENT or without its MANIFEST, and changes nothing; repair-storage brings it back', async () => {
    const s = site('damaged');
    for (const u of ['alice', 'bob']) assert.equal((await s.cli('adduser', `${u}@localhost`, '--password', 'pw')).code, 0);
    const current = join(s.storage, 'CURRENT');
    const good = readFileSync(current, 'utf8');
    const manifest = join(s.storage, good.trim());
    const refused = async (pattern: RegExp) => {
      const before = listing(s.storage);
      const r = await s.cli('start');
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, pattern);
      assert.match(r.stderr, /jabberfly restore FILE/);
      assert.match(r.stderr, /repair-storage/);
      assert.deepEqual(listing(s.storage), before, 'the folder is untouched');
      // The account commands on the stopped store refuse it the same way.
      const users = await s.cli('users');
      assert.equal(users.code, 1);
      assert.match(users.stderr, pattern);
    };

    writeFileSync(current, 'garbage\n');
    await refused(new RegExp(`${current}.* is corrupt`));
    writeFileSync(current, good);

    const aside = `${manifest}.aside`;
    renameSync(manifest, aside);
    await refused(new RegExp(`${manifest}, which CURRENT names, is missing`));
    renameSync(aside, manifest);

    unlinkSync(current);
    await refused(new RegExp(`storage folder ${s.storage} is not empty but has no CURRENT file`));

    const repaired = await s.cli('repair-storage');
    assert.equal(repaired.code, 0, repaired.stderr);
    assert.match(repaired.stdout, /repaired: the store opens \(2 accounts\)/);
    const users = await s.cli('users');
    assert.equal(users.code, 0, users.stderr);
    assert.match(users.stdout, /alice@localhost/);
    assert.match(users.stdout, /bob@localhost/);
  });

  it('names the path and the errno when the store or the key cannot be made', async () => {
    const s = site('unwritable');
    const file = join(s.dir, 'a-file');
    writeFileSync(file, '');
    // storage.path below a regular file
    writeFileSync(
      s.config,
      readFileSync(s.config, 'utf8').replace(/storage: \{ path: "[^"]*" \}/, `storage: { path: "${join(file, 'storage')}" }`),
    );
    const r1 = await s.cli('start');
    assert.equal(r1.code, 1);
    assert.match(r1.stderr, new RegExp(`cannot create the storage folder ${join(file, 'storage')}: ENOTDIR`));
    // msn.keyFile below a regular file
    writeFileSync(
      s.config,
      readFileSync(s.config, 'utf8').replace(/storage: \{ path: "[^"]*" \}/, `storage: { path: "${s.storage}" }`) +
        `\nmsn: { keyFile: "${join(file, 'keys', 'transport.key')}" }\n`,
    );
    const r2 = await s.cli('start');
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, new RegExp(`transport key ${join(file, 'keys')}: ENOTDIR`));
  });

  it('backup and restore: a store used by real clients round-trips through one file; a truncated file restores nothing', async () => {
    const s = site('backup');
    let server = await s.start();
    for (const u of ['alice', 'bob']) assert.equal((await s.cli('adduser', `${u}@localhost`, '--password', `${u}-pw`)).code, 0);
    const alice = await rawLogin(server.port, 'alice', 'alice-pw', 'a');
    sockets.push(alice);
    alice.write(`<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bobby'/></query></iq>`);
    alice.write(`<iq type='set' id='v1'><vCard xmlns='vcard-temp'><FN>Alice Liddell</FN></vCard></iq>`);
    alice.write(`<message to='bob@localhost' id='off1' type='chat'><body>while you were away</body></message>`);
    // Answered after the message: everything before it is stored.
    alice.write(`<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await alice.waitFor(/id="p1"/, 30_000);
    alice.destroy();

    const file = join(s.dir, 'site.jfbackup.gz');
    const locked = await s.cli('backup', file);
    assert.equal(locked.code, 1);
    assert.match(locked.stderr, /in use by another jabberfly process: stop the server first/);
    await server.stop();

    const made = await s.cli('backup', file);
    assert.equal(made.code, 0, made.stderr);
    assert.match(made.stdout, /backed up .*: \d+ records/);
    assert.match(made.stdout, /keyValue:accounts +2 keys/);
    assert.equal(mode(file), 0o600, 'the backup holds password keys');
    assert.equal(readFileSync(file).subarray(0, 2).toString('hex'), '1f8b', 'gzip, by its name');
    assert.ok(!readFileSync(file).includes(readFileSync(join(s.certs, 'transport.key'))), 'the transport key is not in it');
    const again = await s.cli('backup', file);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /exists: a backup never overwrites a file/);
    const plain = join(s.dir, 'site.jfbackup');
    assert.equal((await s.cli('backup', plain)).code, 0);

    // The store is lost; a truncated copy of the backup restores nothing.
    renameSync(s.storage, `${s.storage}.lost`);
    const lines = readFileSync(plain, 'utf8').split('\n');
    const cut = join(s.dir, 'cut.jfbackup');
    writeFileSync(cut, lines.slice(0, -3).join('\n'));
    const truncated = await s.cli('restore', cut);
    assert.equal(truncated.code, 1);
    assert.match(truncated.stderr, /restore failed: .*cut\.jfbackup is truncated: it has no end marker/);
    const notBackup = await s.cli('restore', s.config);
    assert.equal(notBackup.code, 1);
    assert.match(notBackup.stderr, /is not a jabberfly backup/);
    const empty = await s.cli('users');
    assert.doesNotMatch(empty.stdout, /alice/, 'nothing was restored');

    const restored = await s.cli('restore', file);
    assert.equal(restored.code, 0, restored.stderr);
    assert.match(restored.stdout, /verified: \d+ records, the same counts as the backup/);
    const twice = await s.cli('restore', file);
    assert.equal(twice.code, 1);
    assert.match(twice.stderr, /the target store is not empty/);

    // The restored store serves what the clients had stored.
    server = await s.start();
    const bob = await rawLogin(server.port, 'bob', 'bob-pw', 'b');
    sockets.push(bob);
    bob.write('<presence/>');
    await bob.waitFor(/<message [^>]*id="off1"[^>]*>.*while you were away/s, 30_000);
    const alice2 = await rawLogin(server.port, 'alice', 'alice-pw', 'a2');
    sockets.push(alice2);
    alice2.write(`<iq type='get' id='r2'><query xmlns='jabber:iq:roster'/></iq>`);
    await alice2.waitFor(/id="r2".*<item [^>]*jid="bob@localhost"[^>]*name="Bobby"|id="r2".*<item [^>]*name="Bobby"[^>]*jid="bob@localhost"/s, 30_000);
    alice2.write(`<iq type='get' id='v2' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>`);
    await alice2.waitFor(/id="v2".*<FN>Alice Liddell<\/FN>/s, 30_000);
    await server.stop();

    // The file names no backend: the same backup restores into PostgreSQL, counts verified.
    const db = await testDatabase();
    try {
      const pgSite = site('backup-pg', [`storage: { backend: postgres, path: "${join(root, 'backup-pg', 'node')}", url: "${db.url}" }`]);
      writeFileSync(pgSite.config, readFileSync(pgSite.config, 'utf8').replace(/^storage: \{ path: [^\n]*\n/m, ''));
      const intoPg = await pgSite.cli('restore', file);
      assert.equal(intoPg.code, 0, intoPg.stderr);
      assert.match(intoPg.stdout, /verified: \d+ records, the same counts as the backup/);
      const users = await pgSite.cli('users');
      assert.match(users.stdout, /alice@localhost[\s\S]*bob@localhost/);
    } finally {
      await db.release();
    }
  });
});
