// Uploads are streamed: a 50 MB PUT (and GET) through a real `jabberfly
// start` process must not grow its resident memory by the file's size. RSS
// is sampled from /proc while the bytes flow, and so is the partial file on
// disk, which must grow while the request is still arriving. Afterwards
// `jabberfly deluser` (server stopped) removes the user's files with the account.
//
// What RSS does grow by is garbage: each received chunk is a new Buffer that
// V8 frees at its next collection, which it triggers after about 32 MB of
// such external memory; measured here +31–35 MB for the PUT, whatever the
// file's size. A server that held the file would add the whole 50 MB on top.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { xml } from '@xmpp/client';
import { exited, runCli, startCli, writeSiteConfig } from '../helpers/cli.ts';
import { fetchUrl, openRequest } from '../helpers/http.ts';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

// The server's certificate is the self-signed one it generates.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

const FILE_SIZE = 50 * 1024 * 1024;
const CHUNK = 256 * 1024;

/** Resident set size of a process, in bytes. */
function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m, 'VmRSS in /proc/PID/status');
  return Number(m[1]) * 1024;
}

/** Sizes of the partial (.part) files under a folder. */
function partialSizes(dir: string): number[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile() && d.name.endsWith('.part'))
    .map((d) => statSync(join(d.parentPath, d.name), { throwIfNoEntry: false })?.size ?? 0);
}

/**
 * Samples a process's RSS (and the partial files in `uploads`) every few
 * milliseconds until stopped; returns the highest RSS and the partial file sizes seen.
 */
function sample(pid: number, uploads: string): () => { rss: number; partials: number[] } {
  let peak = rss(pid);
  const partials: number[] = [];
  const timer = setInterval(() => {
    peak = Math.max(peak, rss(pid));
    partials.push(...partialSizes(uploads));
  }, 5);
  return () => {
    clearInterval(timer);
    return { rss: Math.max(peak, rss(pid)), partials };
  };
}

/** A deterministic 50 MB stream (each chunk differs), generated as it is read. */
function generated(size: number, hash: ReturnType<typeof createHash>): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= size) return this.push(null);
      const chunk = Buffer.alloc(Math.min(CHUNK, size - sent), sent % 251);
      chunk.writeUInt32BE(sent, 0);
      hash.update(chunk);
      sent += chunk.length;
      this.push(chunk);
    },
  });
}

async function slot(c: TestClient, filename: string, size: number): Promise<{ put: string; get: string }> {
  const s = (
    await c.xmpp.iqCaller.request(
      xml('iq', { type: 'get', to: 'upload.localhost' }, xml('request', { xmlns: 'urn:xmpp:http:upload:0', filename, size: String(size) })),
    )
  ).getChild('slot')!;
  return { put: s.getChild('put')!.attrs.url, get: s.getChild('get')!.attrs.url };
}

function put(url: string, body: Readable, size: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = openRequest(url, { method: 'PUT', headers: { 'Content-Length': size }, body }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
  });
}

describe('upload memory', { timeout: 180_000 }, () => {
  let dir: string;
  let config: string;
  let child: ChildProcess;
  let alice: TestClient;
  let c2sPort: number;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jabberfly-upload-mem-'));
    config = writeSiteConfig(dir, [
      'c2s: { port: 0, directTlsPort: false }',
      's2s: { port: false }',
      'http: { port: false }',
      'https: { port: 0 }',
      'msn: { enabled: false }',
      `upload: { path: "${join(dir, 'uploads')}", maxFileSize: ${FILE_SIZE}, quotaPerUser: ${2 * FILE_SIZE} }`,
      'log: { level: info }',
    ]);
    const added = await runCli(['adduser', 'alice@localhost', '--password', 'pw', '--config', config]);
    assert.equal(added.code, 0, added.stderr);
    const started = await startCli(['--config', config]);
    child = started.child;
    c2sPort = Number(/started .*c2s=(\d+)/.exec(started.output())![1]);
    alice = await connect({ port: c2sPort, username: 'alice', password: 'pw' });
  });
  after(async () => {
    await alice?.stop();
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await exited(child);
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a 50 MB PUT and GET do not grow the server’s RSS by the file size', async () => {
    const pid = child.pid!;
    // Warm up every code path (TLS, slot, PUT, GET) with a small file first.
    const warm = await slot(alice, 'warm.bin', CHUNK * 4);
    assert.equal(await put(warm.put, Readable.from([Buffer.alloc(CHUNK * 4)]), CHUNK * 4), 201);
    assert.equal((await fetchUrl(warm.get)).status, 200);

    const s = await slot(alice, 'big.bin', FILE_SIZE);
    const sent = createHash('sha256');
    const uploads = join(dir, 'uploads');
    const baseline = rss(pid);
    const stopPut = sample(pid, uploads);
    assert.equal(await put(s.put, generated(FILE_SIZE, sent), FILE_SIZE), 201);
    const { rss: putPeak, partials } = stopPut();
    // The bytes reached the disk as they arrived, not all at the end.
    const midway = partials.filter((n) => n > 0 && n < FILE_SIZE);
    assert.ok(midway.length > 0, `partial file sizes seen: ${partials.join(', ')}`);

    const received = createHash('sha256');
    let length = 0;
    const stopGet = sample(pid, uploads);
    await new Promise<void>((resolve, reject) => {
      openRequest(s.get, {}, (res) => {
        assert.equal(res.statusCode, 200);
        res.on('data', (c: Buffer) => {
          received.update(c);
          length += c.length;
        });
        res.on('end', resolve);
        res.on('error', reject);
      }).on('error', reject);
    });
    const getPeak = stopGet().rss;
    assert.equal(length, FILE_SIZE);
    assert.equal(received.digest('hex'), sent.digest('hex'));

    const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;
    console.log(`RSS baseline ${mb(baseline)}, peak during PUT +${mb(putPeak - baseline)}, during GET +${mb(getPeak - baseline)}`);
    assert.ok(putPeak - baseline < FILE_SIZE, `PUT grew RSS by ${mb(putPeak - baseline)}`);
    assert.ok(getPeak - baseline < FILE_SIZE, `GET grew RSS by ${mb(getPeak - baseline)}`);
  });

  it('jabberfly deluser removes the user’s files', async () => {
    await alice.stop();
    child.kill('SIGTERM');
    assert.equal(await exited(child), 0);
    const uploads = join(dir, 'uploads');
    const files = () => readdirSync(uploads, { recursive: true, withFileTypes: true }).filter((d) => d.isFile());
    assert.equal(files().length, 2);
    const r = await runCli(['deluser', 'alice@localhost', '--config', config]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(uploads));
    assert.deepEqual(files(), []);
  });
});
