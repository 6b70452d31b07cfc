// The storage seam's contract on the LevelDB backend (the default).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LevelBackend } from '../../src/storage/level.ts';
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
