// The storage seam's contract on the LevelDB backend (the default).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ClassicLevel } from 'classic-level';
import { newArchiveId } from '../../src/storage/archive-id.ts';
import { LevelBackend } from '../../src/storage/level.ts';
import type { ArchiveEntry } from '../../src/storage/types.ts';
import { storageSuite } from './suite.ts';

const dir = mkdtempSync(join(tmpdir(), 'jabberfly-seam-'));
storageSuite('LevelDB', {
  open: () => LevelBackend.open(dir),
  async reopen(b) {
    await b.close();
    return LevelBackend.open(dir);
  },
  async cleanup() {
    rmSync(dir, { recursive: true, force: true });
  },
  atomic: false,
});

// Archive segments written by earlier versions (no version byte: per entry,
// the id in 16 bytes, then the correspondent and the XML each as a 32-bit
// byte length and UTF-8) still read after an upgrade, beside new ones.
test('LevelDB: archive segments in the earlier format still read', async () => {
  const old = mkdtempSync(join(tmpdir(), 'jabberfly-seg-'));
  try {
    const owner = 'alice@localhost';
    const earlier = [
      { id: newArchiveId(Date.now() - 2000).id, with: 'bob@localhost', xml: "<message type='chat'><body>früh 1</body></message>" },
      { id: newArchiveId(Date.now() - 1000).id, with: 'carol@example.org', xml: "<message type='chat'><body>früh 2 😀</body></message>" },
    ];
    const db = new ClassicLevel<string, unknown>(old);
    await db.open();
    const segments = db.sublevel<string, Buffer>('mam', { valueEncoding: 'buffer' });
    const byWith = db.sublevel<string, string>('mam-by-with', { valueEncoding: 'utf8' });
    await segments.put(`${owner}\0${earlier[0]!.id}`, segmentV0(earlier));
    await byWith.put(`${owner}\0bob@localhost\0${earlier[0]!.id}`, earlier[0]!.id + earlier[0]!.id);
    await byWith.put(`${owner}\0carol@example.org\0${earlier[1]!.id}`, earlier[0]!.id + earlier[1]!.id);
    await db.close();

    const b = await LevelBackend.open(old);
    const archive = b.archive('mam');
    const { id: newer, when } = newArchiveId();
    await archive.append(owner, { id: newer, when, with: 'bob@localhost', xml: "<message type='chat'><body>neu 😀 &amp; ü</body></message>" });
    const all: ArchiveEntry[] = [];
    for await (const e of archive.query(owner, {})) all.push(e);
    assert.deepEqual(
      all.map((e) => [e.id, e.with, e.xml]),
      [...earlier.map((e) => [e.id, e.with, e.xml]), [newer, 'bob@localhost', "<message type='chat'><body>neu 😀 &amp; ü</body></message>"]],
    );
    const withCarol: string[] = [];
    for await (const e of archive.query(owner, { with: 'carol@example.org' })) withCarol.push(e.xml);
    assert.deepEqual(withCarol, [earlier[1]!.xml]);
    const [second, missing] = await archive.get(owner, [earlier[1]!.id, newArchiveId().id]);
    assert.equal(second?.xml, earlier[1]!.xml);
    assert.equal(missing, undefined);
    await b.close();
  } finally {
    rmSync(old, { recursive: true, force: true });
  }
});

function segmentV0(entries: Array<{ id: string; with: string; xml: string }>): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const w = Buffer.from(e.with, 'utf8');
    const x = Buffer.from(e.xml, 'utf8');
    const lengths = Buffer.alloc(8);
    lengths.writeUInt32BE(w.length, 0);
    lengths.writeUInt32BE(x.length, 4);
    parts.push(Buffer.from(e.id, 'latin1'), lengths.subarray(0, 4), w, lengths.subarray(4), x);
  }
  return Buffer.concat(parts);
}
