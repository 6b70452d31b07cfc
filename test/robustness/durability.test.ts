// Acknowledged writes survive kill -9. A client streams messages to an
// offline user, each followed by a ping; a ping's answer acknowledges every
// message sent before it on the stream (storage/durability.ts). In each of
// ten rounds the real `jabberfly start` process is killed with SIGKILL the
// moment the k-th answer arrives (k varies by round), and the store is read
// directly: every acknowledged message must be there.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LevelBackend } from '../../src/storage/level.ts';
import { exited, runCli, startCli, writeSiteConfig } from '../helpers/cli.ts';
import { rawLogin } from '../helpers/raw-socket.ts';
import '../helpers/server.ts'; // accepts the generated self-signed certificate

const ROUNDS = 10;
const WINDOW = 40; // pings in flight

describe('durability: acknowledged offline messages across kill -9', () => {
  let dir: string;
  let config: string;
  let child: ChildProcess | null = null;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jabberfly-durability-'));
    config = writeSiteConfig(dir, [
      'c2s: { port: 0, directTlsPort: false }',
      's2s: { port: false }',
      'http: { port: false }',
      'https: { port: false }',
      'msn: { enabled: false }',
      'limits: { offlineMaxMessages: 1000000 }',
      'log: { level: info }',
    ]);
    for (const user of ['alice', 'bob']) {
      const r = await runCli(['adduser', `${user}@localhost`, '--password', 'pw', '--config', config]);
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  // One test per round (each well inside the per-test timeout on a loaded
  // machine); what was acknowledged accumulates across rounds.
  const acknowledged = new Set<string>();
  for (let round = 0; round < ROUNDS; round++) {
    it(`round ${round + 1} of ${ROUNDS}: every acknowledged message is in the store after kill -9`, async () => {
      const started = await startCli(['--config', config]);
      child = started.child;
      const port = Number(/c2s=(\d+)/.exec(started.output())![1]);
      const alice = await rawLogin(port, 'alice', 'pw', `r${round}`);
      const killAt = 60 + ((round * 37) % 90);
      let answered = 0;
      let next = 0;
      const sendOne = () => {
        const n = next++;
        alice.write(`<message to='bob@localhost' type='chat' id='m-${round}-${n}'><body>${n}</body></message>`);
        alice.write(`<iq type='get' id='p-${round}-${n}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
      };
      for (let i = 0; i < WINDOW; i++) sendOne();
      // The answer to ping n acknowledges messages 0..n of this round.
      // The server is killed the moment the killAt-th answer arrives.
      await new Promise<void>((resolve, reject) => {
        const re = /<iq [^>]*>/g;
        let pos = 0;
        const stop = alice.onInput(() => {
          re.lastIndex = pos;
          for (let m = re.exec(alice.input); m; m = re.exec(alice.input)) {
            pos = re.lastIndex;
            const id = /id=["']p-\d+-(\d+)["']/.exec(m[0]);
            if (!id || !/type=["']result["']/.test(m[0])) continue;
            const n = Number(id[1]);
            for (let i = 0; i <= n; i++) acknowledged.add(`m-${round}-${i}`);
            if (++answered === killAt) {
              child!.kill('SIGKILL');
              stop();
              resolve();
              return;
            }
            sendOne();
          }
          if (alice.closed) {
            stop();
            reject(new Error(`stream closed after ${answered} answers: ${alice.input.slice(-300)}`));
          }
        });
      });
      await exited(child);
      alice.destroy();
      // Read the store as the next start would find it.
      const backend = await LevelBackend.open(join(dir, 'storage'));
      const stored = new Set(
        (await backend.list<string>('offline').list('bob@localhost')).map((xml) => /id=["']([^"']+)["']/.exec(xml)?.[1] ?? xml),
      );
      await backend.close();
      const lost = [...acknowledged].filter((id) => !stored.has(id));
      assert.deepEqual(lost, [], `round ${round}: acknowledged messages missing from the store after kill -9`);
      assert.ok(stored.size >= acknowledged.size, 'the store holds at least every acknowledged message');
    });
  }

  it('acknowledged enough messages to mean something', () => {
    assert.ok(acknowledged.size >= ROUNDS * 60, `${acknowledged.size} acknowledged messages`);
  });
});
