// `jabberfly backup FILE` / `jabberfly restore FILE`: every store of a
// backend as one portable file, and back. The file is JSON Lines (gzip when
// its name ends in .gz; restore recognises gzip by its magic bytes): a
// header line, one line per record as the whole-backend copy reads them
// (copy.ts: readBackend / writeRecords, the code `migrate-storage` uses),
// and a trailer with the record count and the per-store counts. Restore
// reads the whole file once to check it (a truncated or altered file is
// refused before anything is written), loads it into an empty backend, then
// counts that backend and compares with the trailer. It works from either
// backend to either: the file names no backend. Upload file bytes (under
// upload.path) and the transport key are not in it: they are files to copy
// as files (the key deliberately apart from the store).
import { once } from 'node:events';
import { createReadStream, createWriteStream, openSync, closeSync, readSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import { VERSION } from '../version.ts';
import { countBackend, readBackend, type StoreRecord, writeRecords } from './copy.ts';
import { errnoText } from './level-folder.ts';
import type { StorageBackend } from './types.ts';

export const BACKUP_FORMAT = 'jabberfly-backup';
const FORMAT_VERSION = 1;

/** The file is not a usable backup, or cannot be written or read; the message says which and why. */
export class BackupError extends Error {}

interface Header {
  format: typeof BACKUP_FORMAT;
  version: number;
  created: string;
  jabberfly: string;
}
interface Trailer {
  end: true;
  records: number;
  counts: Record<string, Record<string, number>>;
}

export interface BackupSummary {
  records: number;
  counts: Record<string, Record<string, number>>;
}

/** Writes every store of `from` to `file` (mode 0600: it holds password keys). */
export async function backupTo(from: StorageBackend, file: string): Promise<BackupSummary> {
  let records = 0;
  const counts = Object.fromEntries(await countBackend(from));
  async function* lines(): AsyncGenerator<string> {
    const header: Header = { format: BACKUP_FORMAT, version: FORMAT_VERSION, created: new Date().toISOString(), jabberfly: VERSION };
    yield `${JSON.stringify(header)}\n`;
    for await (const r of readBackend(from)) {
      records++;
      yield `${JSON.stringify(r)}\n`;
    }
    const trailer: Trailer = { end: true, records, counts };
    yield `${JSON.stringify(trailer)}\n`;
  }
  // 'wx': never over an existing file (an older backup is not overwritten by mistake).
  const out = createWriteStream(file, { flags: 'wx', mode: 0o600 });
  try {
    await once(out, 'open');
  } catch (err) {
    throw new BackupError(`cannot write ${file}: ${errnoText(err)}`);
  }
  try {
    const source = Readable.from(lines());
    if (file.endsWith('.gz')) await pipeline(source, createGzip(), out);
    else await pipeline(source, out);
  } catch (err) {
    throw new BackupError(`writing ${file} failed: ${errnoText(err)}`);
  }
  // Counted before the records were read: a store that changed meanwhile would show here.
  const after = Object.fromEntries(await countBackend(from));
  if (JSON.stringify(after) !== JSON.stringify(counts)) {
    throw new BackupError(`the store changed while ${file} was written: stop the server and run the backup again`);
  }
  return { records, counts };
}

/** The file's lines, gunzipped when it starts with gzip's magic bytes. */
async function* readLines(file: string): AsyncGenerator<{ line: string; n: number }> {
  let gz = false;
  try {
    const fd = openSync(file, 'r');
    const magic = Buffer.alloc(2);
    readSync(fd, magic, 0, 2, 0);
    closeSync(fd);
    gz = magic[0] === 0x1f && magic[1] === 0x8b;
  } catch (err) {
    throw new BackupError(`cannot read ${file}: ${errnoText(err)}`);
  }
  const raw = createReadStream(file);
  const input = gz ? raw.pipe(createGunzip()) : raw;
  let failure: Error | null = null;
  const fail = (err: Error) => {
    failure = err;
  };
  raw.on('error', fail);
  input.on('error', fail);
  const rl = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  let n = 0;
  try {
    for await (const line of rl) {
      n++;
      if (line) yield { line, n };
    }
  } catch (err) {
    failure = err as Error;
  }
  if (failure) throw new BackupError(`${file} cannot be read to its end: ${(failure as Error).message}`);
}

function parseLine(file: string, line: string, n: number): unknown {
  try {
    return JSON.parse(line);
  } catch {
    throw new BackupError(`${file} is not a jabberfly backup or is damaged: line ${n} is not JSON`);
  }
}

const RECORD_FIELDS: Record<StoreRecord['kind'], string[]> = {
  keyValue: ['name', 'key', 'value'],
  list: ['name', 'key', 'item'],
  pubsubNode: ['name', 'service', 'node'],
  pubsubItem: ['name', 'service', 'node', 'item'],
  archive: ['name', 'owner', 'entry'],
  upload: ['record'],
};

function asRecord(file: string, v: unknown, n: number): StoreRecord {
  const r = v as Record<string, unknown> | null;
  const fields = r && typeof r === 'object' ? RECORD_FIELDS[r.kind as StoreRecord['kind']] : undefined;
  if (!fields || fields.some((f) => r![f] === undefined)) {
    throw new BackupError(`${file} is damaged: line ${n} is not a store record`);
  }
  return r as unknown as StoreRecord;
}

/** Reads the whole file and checks its header, every record and its trailer; returns the trailer. */
async function verifyFile(file: string): Promise<Trailer> {
  let header: Header | null = null;
  let trailer: Trailer | null = null;
  let records = 0;
  for await (const { line, n } of readLines(file)) {
    const v = parseLine(file, line, n) as Record<string, unknown>;
    if (!header) {
      if (v?.format !== BACKUP_FORMAT) throw new BackupError(`${file} is not a jabberfly backup (no '${BACKUP_FORMAT}' header on its first line)`);
      if (typeof v.version !== 'number' || v.version > FORMAT_VERSION) {
        throw new BackupError(`${file} was written in backup format ${String(v.version)}, newer than this jabberfly reads (${FORMAT_VERSION}): restore it with jabberfly ${String(v.jabberfly)} or later`);
      }
      header = v as unknown as Header;
      continue;
    }
    if (trailer) throw new BackupError(`${file} is damaged: line ${n} follows the end marker`);
    if (v?.end === true) {
      trailer = v as unknown as Trailer;
      continue;
    }
    asRecord(file, v, n);
    records++;
  }
  if (!header) throw new BackupError(`${file} is empty: not a jabberfly backup`);
  if (!trailer) throw new BackupError(`${file} is truncated: it has no end marker (${records} records read); nothing was restored`);
  if (trailer.records !== records) {
    throw new BackupError(`${file} is damaged: its end marker counts ${trailer.records} records, the file holds ${records}`);
  }
  return trailer;
}

/**
 * Loads `file` into the empty backend `to` and verifies the counts;
 * throws BackupError (nothing written) for a file that is not a whole
 * backup, or when the target is not empty.
 */
export async function restoreFrom(to: StorageBackend, file: string, progress: (line: string) => void = () => {}): Promise<BackupSummary> {
  const trailer = await verifyFile(file);
  if ((await to.exporter().stores()).length) {
    throw new BackupError('the target store is not empty: restore loads into an empty one only (move the current storage folder away, or use an empty database)');
  }
  async function* records(): AsyncGenerator<StoreRecord> {
    let first = true;
    for await (const { line, n } of readLines(file)) {
      if (first) {
        first = false;
        continue;
      }
      const v = parseLine(file, line, n) as Record<string, unknown>;
      if (v.end === true) return;
      yield asRecord(file, v, n);
    }
  }
  await writeRecords(to, records(), progress);
  const got = await countBackend(to);
  for (const [store, c] of Object.entries(trailer.counts)) {
    for (const [unit, n] of Object.entries(c)) {
      const have = got.get(store)?.[unit] ?? 0;
      if (have !== n) throw new BackupError(`restore incomplete: ${store} has ${have} ${unit}, the backup ${n}`);
    }
  }
  for (const store of got.keys()) if (!(store in trailer.counts)) throw new BackupError(`restore wrote ${store}, which the backup does not list`);
  return { records: trailer.records, counts: trailer.counts };
}
