// TLS output pacing (src/stream/tls-paced-writer.ts) over a real loopback
// TLS connection: every byte arrives, in order, whatever the sizes and
// however multi-byte characters fall on piece boundaries; while little is
// waiting, no single write to the TLS socket exceeds SMALL_WRITE bytes (so
// Node's 1 KiB ciphertext buffer is never outgrown); past BULK_WRITE bytes
// waiting, the queue goes out in one write.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect, createServer, type Server, type TLSSocket } from 'node:tls';
import { BULK_WRITE, MAX_PIECES, SMALL_WRITE, TlsPacedWriter } from '../../src/stream/tls-paced-writer.ts';
import { generateSelfSigned } from '../../src/tls/certs.ts';

describe('TLS output pacing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'jabberfly-paced-'));
  let server: Server;
  const accepted: TLSSocket[] = [];
  const waiting: Array<(s: TLSSocket) => void> = [];

  before(async () => {
    generateSelfSigned(join(dir, 'c.crt'), join(dir, 'c.key'), ['localhost']);
    server = createServer({ cert: readFileSync(join(dir, 'c.crt')), key: readFileSync(join(dir, 'c.key')) }, (s) => {
      const w = waiting.shift();
      if (w) w(s);
      else accepted.push(s);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  });
  after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A connected pair: the server's TLS socket (written through the writer) and the client reading it. */
  async function pair(): Promise<{ srv: TLSSocket; client: TLSSocket; writes: number[]; received: () => Promise<Buffer> }> {
    const srvP = new Promise<TLSSocket>((resolve) => {
      const s = accepted.shift();
      if (s) resolve(s);
      else waiting.push(resolve);
    });
    const client = connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', rejectUnauthorized: false });
    await once(client, 'secureConnect');
    const srv = await srvP;
    // Every write reaching the TLS socket, by its byte size.
    const writes: number[] = [];
    const write = srv.write.bind(srv) as (...a: unknown[]) => boolean;
    (srv as unknown as { write: (...a: unknown[]) => boolean }).write = (data: unknown, ...rest: unknown[]) => {
      writes.push(typeof data === 'string' ? Buffer.byteLength(data) : (data as Buffer).length);
      return write(data, ...rest);
    };
    const chunks: Buffer[] = [];
    client.on('data', (c: Buffer) => chunks.push(c));
    const received = async () => {
      srv.end();
      await once(client, 'end');
      return Buffer.concat(chunks);
    };
    return { srv, client, writes, received };
  }

  it('delivers everything in order, in pieces of at most SMALL_WRITE bytes while little is waiting', async () => {
    const { srv, writes, received } = await pair();
    let idle = 0;
    const w = new TlsPacedWriter(srv, () => idle++);
    // Small and large strings, with 2-, 3- and 4-byte characters across piece boundaries.
    // Short multi-byte strings too: queued, they count by their UTF-8 bytes.
    const parts = ['<a/>', 'ü', '€'.repeat(10), 'é'.repeat(700), 'x'.repeat(600), '€'.repeat(333), '𝄞'.repeat(100), '<b/>', 'y'.repeat(500)];
    for (const p of parts) w.write(p);
    const total = parts.reduce((n, p) => n + Buffer.byteLength(p), 0);
    assert.ok(total < BULK_WRITE);
    assert.equal(w.pending, total - 4, 'the rest waits for the first write, counted in bytes');
    while (w.pending > 0) await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    const got = await received();
    assert.equal(got.toString('utf8'), parts.join(''));
    assert.equal(got.length, total);
    assert.ok(writes.length >= Math.ceil(total / SMALL_WRITE), `${writes.length} writes`);
    assert.ok(Math.max(...writes) <= SMALL_WRITE, `largest write ${Math.max(...writes)}`);
    assert.equal(w.bulk, false);
    assert.ok(idle >= 1, 'reports when everything was written');
  });

  it('flushAll hands over what waits; past BULK_WRITE everything goes at once, and pacing ends', async () => {
    const { srv, writes, received } = await pair();
    let idle = 0;
    const w = new TlsPacedWriter(srv, () => idle++);
    assert.equal(w.bulk, false);
    // Queued behind a write in flight, then handed over whole (as before the socket is ended).
    w.write('<first/>');
    w.write('q'.repeat(100));
    w.write('r'.repeat(3000));
    assert.equal(w.pending, 3100);
    w.flushAll();
    assert.equal(w.pending, 0);
    assert.ok(writes.includes(3100), `one write for what waited: ${writes.join(',')}`);
    while (srv.writableLength > 0) await new Promise((r) => setImmediate(r));
    // A burst: the first piece goes out, the rest waits, outgrows BULK_WRITE and goes in one write.
    const idleBefore = idle;
    const burst = Array.from({ length: 40 }, (_, i) => `<m n='${i}'>${'b'.repeat(500)}</m>`);
    for (const m of burst) w.write(m);
    while (w.pending > 0) await new Promise((r) => setImmediate(r));
    const bulkWrite = writes.at(-1)!;
    assert.ok(bulkWrite > BULK_WRITE, `bulk write of ${bulkWrite} bytes`);
    // No more pacing on this connection: the caller writes straight to the socket from now on.
    assert.equal(w.bulk, true);
    while (idle === idleBefore) await new Promise((r) => setImmediate(r));
    srv.write('s'.repeat(3000));
    const got = await received();
    assert.equal(got.toString(), `<first/>${'q'.repeat(100)}${'r'.repeat(3000)}${burst.join('')}${'s'.repeat(3000)}`);
  });

  it('stops pacing after MAX_PIECES pieces in a row, though less than BULK_WRITE waits', async () => {
    const { srv, writes, received } = await pair();
    const w = new TlsPacedWriter(srv, () => {});
    const stanzas = Array.from({ length: 40 }, (_, i) => `<m n='${String(i).padStart(2, '0')}'>${'c'.repeat(286)}</m>`);
    for (const m of stanzas) w.write(m);
    const total = stanzas.join('').length;
    assert.ok(total < BULK_WRITE);
    while (w.pending > 0) await new Promise((r) => setImmediate(r));
    assert.equal(w.bulk, true);
    // The first write, MAX_PIECES pieces, then the rest in one.
    assert.equal(writes.length, 1 + MAX_PIECES + 1, writes.join(','));
    assert.ok(writes.slice(0, -1).every((n) => n <= SMALL_WRITE));
    assert.equal((await received()).toString(), stanzas.join(''));
  });
});
