// Fills one user's archive straight through the storage seam (the same
// ArchiveStore the server uses), for the MAM query-latency figure: a
// million messages would take far too long to send over XMPP. Entries are
// spread over the last 300 days (inside the default retention) with 100
// correspondents; every 1000th id is returned for the queries to start from.
import { join } from 'node:path';
import { newArchiveId } from '../src/storage/archive-id.ts';
import { LevelBackend } from '../src/storage/level.ts';
import { DOMAIN } from './servers.ts';

export const CORRESPONDENTS = 100;

export async function fillArchive(dir: string, owner: string, count: number): Promise<string[]> {
  const backend = await LevelBackend.open(join(dir, 'storage'));
  const archive = backend.archive('mam');
  const sample: string[] = [];
  const body = 'The quick brown fox jumps over the lazy dog, 0123456789.';
  const span = 300 * 24 * 3600 * 1000;
  const t0 = Date.now() - span;
  try {
    const chunk = 5000;
    for (let i = 0; i < count; i += chunk) {
      const writes: Array<Promise<void>> = [];
      for (let j = i; j < Math.min(count, i + chunk); j++) {
        const { id, when } = newArchiveId(t0 + Math.floor((j / count) * span));
        const peer = `c${j % CORRESPONDENTS}@${DOMAIN}`;
        const incoming = j % 2 === 0;
        const xml = incoming
          ? `<message from="${peer}/r" to="${owner}/bench" type="chat" id="m${j}"><body>${body}</body><stanza-id xmlns="urn:xmpp:sid:0" by="${owner}" id="${id}"/></message>`
          : `<message from="${owner}/bench" to="${peer}" type="chat" id="m${j}"><body>${body}</body></message>`;
        writes.push(archive.append(owner, { id, when, with: peer, xml }));
        if (j % 1000 === 0) sample.push(id);
      }
      await Promise.all(writes);
    }
  } finally {
    await backend.close();
  }
  return sample;
}
