// Password guessing: failed logins are throttled per address and per
// account across connections (growing delays, then a temporary block),
// unknown accounts get the same SCRAM answers as known ones (a stable decoy
// salt), and every failure is logged at warn in a line the sample fail2ban
// filter (docs/fail2ban/) matches with the client's real address.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ScramHash, digest, hmac, saltedPassword } from '../../src/auth/scram.ts';
import { AuthThrottle, addressKey } from '../../src/auth/throttle.ts';
import { Logger } from '../../src/log.ts';
import { RawSocket, streamHeader } from '../helpers/raw-socket.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const FILTER = new URL('../../docs/fail2ban/jabberfly.conf', import.meta.url).pathname;

/** A secured, unauthenticated stream from a given loopback address. */
async function streamFrom(port: number, localAddress: string): Promise<RawSocket> {
  const s = await RawSocket.connectFrom(port, localAddress);
  s.write(streamHeader());
  await s.waitFor(/<\/stream:features>/);
  s.write("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  await s.waitFor(/<proceed/);
  await s.startTls();
  s.write(streamHeader());
  await s.waitFor(/<\/stream:features>/);
  s.input = '';
  return s;
}

/** One PLAIN attempt; the SASL answer's condition ('success' when it worked). */
async function plain(s: RawSocket, user: string, password: string): Promise<string> {
  s.input = '';
  s.write(`<auth xmlns='${SASL}' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${password}`).toString('base64')}</auth>`);
  const [answer] = await s.waitFor(/<success[^>]*\/>|<success[^>]*>.*?<\/success>|<failure[^>]*>.*?<\/failure>/s, 30_000);
  if (answer!.startsWith('<success')) return 'success';
  return /<failure[^>]*><([a-z-]+)/.exec(answer!)![1]!;
}

/** The server-first message SCRAM answers `user` with (the exchange is then aborted). */
async function scramChallenge(s: RawSocket, hash: ScramHash, user: string): Promise<Map<string, string>> {
  s.input = '';
  const first = `n,,n=${user},r=${randomBytes(12).toString('base64')}`;
  s.write(`<auth xmlns='${SASL}' mechanism='SCRAM-${hash}'>${Buffer.from(first).toString('base64')}</auth>`);
  const [, b64] = await s.waitFor(/<challenge[^>]*>([^<]*)<\/challenge>|<failure/);
  assert.ok(b64, `a challenge for ${user}, got: ${s.input}`);
  s.write(`<abort xmlns='${SASL}'/>`);
  await s.waitFor(/<aborted/);
  return new Map(Buffer.from(b64!, 'base64').toString().split(',').map((kv) => [kv[0]!, kv.slice(2)]));
}

/** A full SCRAM login attempt with a password; the final answer's condition or 'success'. */
async function scramLogin(s: RawSocket, hash: ScramHash, user: string, password: string): Promise<string> {
  s.input = '';
  const nonce = randomBytes(12).toString('base64');
  const bare = `n=${user},r=${nonce}`;
  s.write(`<auth xmlns='${SASL}' mechanism='SCRAM-${hash}'>${Buffer.from(`n,,${bare}`).toString('base64')}</auth>`);
  const [, b64] = await s.waitFor(/<challenge[^>]*>([^<]*)<\/challenge>/);
  const serverFirst = Buffer.from(b64!, 'base64').toString();
  const f = new Map(serverFirst.split(',').map((kv) => [kv[0]!, kv.slice(2)]));
  const salted = saltedPassword(hash, password, Buffer.from(f.get('s')!, 'base64'), Number(f.get('i')));
  const clientKey = hmac(hash, salted, 'Client Key');
  const withoutProof = `c=biws,r=${f.get('r')}`;
  const sig = hmac(hash, digest(hash, clientKey), `${bare},${serverFirst},${withoutProof}`);
  const proof = Buffer.from(clientKey.map((b, i) => b ^ sig[i]!)).toString('base64');
  s.input = '';
  s.write(`<response xmlns='${SASL}'>${Buffer.from(`${withoutProof},p=${proof}`).toString('base64')}</response>`);
  const [answer] = await s.waitFor(/<success[^>]*\/>|<success[^>]*>.*?<\/success>|<failure[^>]*>.*?<\/failure>/s, 30_000);
  if (answer!.startsWith('<success')) return 'success';
  return /<failure[^>]*><([a-z-]+)/.exec(answer!)![1]!;
}

describe('auth throttle (unit, fake clock)', () => {
  const limits = { freeFailures: 2, maxDelay: 4, blockAfter: 6, blockTime: 60 };
  const quiet = new Logger('silent');

  it('answers failures ever more slowly, then blocks the address for the block time', () => {
    let now = 1_000_000;
    const t = new AuthThrottle(limits, quiet, () => now);
    const delays = [];
    for (let i = 0; i < 6; i++) {
      assert.equal(t.check('192.0.2.1', null).blocked, false, `attempt ${i + 1} allowed`);
      delays.push(t.failed({ ip: '192.0.2.1', user: null, mechanism: 'PLAIN', reason: 'not-authorized' }));
      now += 10;
    }
    assert.deepEqual(delays, [0, 0, 250, 500, 1000, 2000]);
    const v = t.check('192.0.2.1', null);
    assert.ok(v.blocked && v.retryAfter > 55 && v.retryAfter <= 60, `blocked, retry in ~60 s: ${JSON.stringify(v)}`);
    assert.equal(t.check('192.0.2.2', null).blocked, false, 'another address is not blocked');
    now += 61_000;
    assert.equal(t.check('192.0.2.1', null).blocked, false, 'the block ends');
    assert.equal(t.failed({ ip: '192.0.2.1', user: null, mechanism: 'PLAIN', reason: 'x' }), 0, 'and counts start over');
    assert.equal(t.delayFor(40), 4000, 'delays stop at maxDelay');
  });

  it('blocks an account tried from many addresses, except from an address that logged in to it before', () => {
    let now = 5_000_000;
    const t = new AuthThrottle(limits, quiet, () => now);
    t.succeeded('198.51.100.7', 'alice@example.org');
    for (let i = 0; i < 6; i++) {
      t.failed({ ip: `203.0.113.${i}`, user: 'alice@example.org', mechanism: 'PLAIN', reason: 'not-authorized' });
      now += 10;
    }
    assert.equal(t.check('203.0.113.99', 'alice@example.org').blocked, true, 'the account is blocked for new addresses');
    assert.equal(t.check('203.0.113.99', 'bob@example.org').blocked, false, 'other accounts are not');
    assert.equal(t.check('198.51.100.7', 'alice@example.org').blocked, false, 'the owner’s address still gets in');
  });

  it('counts IPv6 per /64 and IPv4-mapped addresses as IPv4', () => {
    assert.equal(addressKey('2001:db8:1:2:aaaa::1'), addressKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'));
    assert.notEqual(addressKey('2001:db8:1:2::1'), addressKey('2001:db8:1:3::1'));
    assert.equal(addressKey('2001:0db8:0001:0002::1'), '2001:db8:1:2::/64');
    assert.equal(addressKey('::ffff:192.0.2.1'), '192.0.2.1');
    assert.equal(addressKey('::1'), '0:0:0:0::/64');
  });
});

describe('auth abuse against a running server', () => {
  let ts: TestServer;
  const streams: RawSocket[] = [];
  const open = async (from: string) => {
    const s = await streamFrom(ts.port, from);
    streams.push(s);
    return s;
  };

  before(async () => {
    ts = await startServer({
      limits: { authFreeFailures: 2, authMaxDelay: 1, authBlockAfter: 6, authBlockTime: 60, maxAuthFailures: 2 },
      log: { level: 'info' },
    });
    await ts.addUser('alice', 'secret');
    await ts.addUser('carol', 'secret');
  });
  after(async () => {
    for (const s of streams) s.destroy();
    await ts?.stop();
  });

  it('answers unknown accounts with a SCRAM challenge shaped like a real one, with a salt stable across attempts and restarts', async () => {
    const s = await open('127.0.0.1');
    for (const hash of ['SHA-1', 'SHA-256'] as const) {
      const known = await scramChallenge(s, hash, 'alice');
      const unknown = await scramChallenge(s, hash, 'nobody');
      const again = await scramChallenge(s, hash, 'nobody');
      const otherCase = await scramChallenge(s, hash, 'NoBody');
      const other = await scramChallenge(s, hash, 'somebody');
      assert.deepEqual([...unknown.keys()], [...known.keys()], 'same attributes');
      assert.equal(unknown.get('i'), known.get('i'), 'same iteration count');
      assert.equal(Buffer.from(unknown.get('s')!, 'base64').length, Buffer.from(known.get('s')!, 'base64').length);
      assert.equal(again.get('s'), unknown.get('s'), 'the same salt each time, as for a real account');
      assert.equal(otherCase.get('s'), unknown.get('s'), 'case variants of a name share a salt, as real accounts do');
      assert.notEqual(other.get('s'), unknown.get('s'), 'each unknown name has its own salt');
      assert.notEqual(unknown.get('s'), known.get('s'));
    }
    // Unknown accounts fail only at the proof, like a wrong password.
    assert.equal(await scramLogin(s, 'SHA-256', 'nobody', 'secret'), 'not-authorized');
    const salt = (await scramChallenge(await open('127.0.0.1'), 'SHA-1', 'nobody')).get('s');
    ts = await ts.restart();
    const after = await scramChallenge(await open('127.0.0.1'), 'SHA-1', 'nobody');
    assert.equal(after.get('s'), salt, 'the decoy salt survives a restart (it derives from a stored secret)');
  });

  it('throttles guesses from one address across connections, blocks it, and logs each failure for fail2ban', async () => {
    const from = '127.0.0.7';
    const answers: string[] = [];
    const times: number[] = [];
    // Two wrong passwords per connection (the per-connection limit), over several connections.
    while (answers.length < 8) {
      const s = await open(from);
      for (let i = 0; i < 2 && answers.length < 8; i++) {
        const t0 = Date.now();
        answers.push(await plain(s, `guess${answers.length % 3}`, 'wrong'));
        times.push(Date.now() - t0);
      }
    }
    assert.deepEqual(answers.slice(0, 6), Array(6).fill('not-authorized'));
    assert.deepEqual(answers.slice(6), ['temporary-auth-failure', 'temporary-auth-failure'], 'blocked after 6 failures');
    assert.ok(times[3]! >= 450, `the 4th failure was answered late (${times[3]} ms)`);
    assert.ok(Math.max(...times.slice(0, 2)) < times[3]!, 'the first failures were answered at once');
    // Even the right password is refused from the blocked address; another address is fine.
    assert.equal(await plain(await open(from), 'carol', 'secret'), 'temporary-auth-failure');
    assert.equal(await plain(await open('127.0.0.8'), 'carol', 'secret'), 'success');

    const lines = ts.logs.filter((l) => / WARN auth: authentication failed /.test(l));
    assert.ok(lines.length >= 8, `every failure logged at warn (${lines.length})`);
    assert.ok(lines.every((l) => !l.includes('wrong')), 'no password in the log');
    assert.match(lines[0]!, /authentication failed ip=127\.0\.0\.7 user=guess0@localhost mechanism=PLAIN reason=not-authorized/);
  });

  it('blocks an account guessed from many addresses, but not for an address its owner used', async () => {
    // The owner logs in from .20 first.
    assert.equal(await plain(await open('127.0.0.20'), 'alice', 'secret'), 'success');
    for (let i = 0; i < 6; i++) {
      assert.equal(await plain(await open(`127.0.1.${i + 1}`), 'alice', `wrong${i}`), 'not-authorized');
    }
    assert.equal(await plain(await open('127.0.1.50'), 'alice', 'secret'), 'temporary-auth-failure', 'new address: blocked');
    assert.equal(await plain(await open('127.0.0.20'), 'alice', 'secret'), 'success', 'the owner’s address: allowed');
    assert.equal(await plain(await open('127.0.1.51'), 'carol', 'secret'), 'success', 'other accounts: allowed');
  });

  it('writes failure lines the sample fail2ban filter matches with the real address, whatever the username', async () => {
    // A username crafted to look like another address must not fool the filter.
    const s = await open('127.0.0.9');
    await plain(s, 'x ip=203.0.113.66 WARN auth: authentication failed ip=203.0.113.66', 'pw');
    const dir = mkdtempSync(join(tmpdir(), 'jabberfly-f2b-'));
    try {
      const log = join(dir, 'jabberfly.log');
      writeFileSync(log, `${ts.logs.join('\n')}\n`);
      const out = execFileSync('fail2ban-regex', ['--out', 'ip', log, FILTER], { encoding: 'utf8' });
      const ips = out.trim().split('\n').filter(Boolean);
      const failures = ts.logs.filter((l) => / WARN auth: authentication failed /.test(l)).length;
      assert.equal(ips.length, failures, 'every failure line matched once');
      assert.ok(ips.includes('127.0.0.9') && ips.includes('127.0.0.7'));
      assert.ok(!ips.includes('203.0.113.66'), `the crafted username did not match: ${ips.join(' ')}`);
      assert.ok(ts.logs.some((l) => /authenticated .*ip=127\.0\.0\.20/.test(l)), 'a successful login was logged');
      assert.ok(!ips.includes('127.0.0.20'), 'successful logins are not matched');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
