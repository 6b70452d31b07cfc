// Uploaded files (XEP-0363): metadata through the storage seam
// (`UploadRecordStore`), bytes as plain files under upload.path, named by
// the record's random id only (no user input reaches a path), two levels
// deep so no folder grows huge. A file is written to `<id>.part` as it
// streams in, flushed, then renamed: a file under its final name is whole.
// upload.path is its own folder, never served as a folder: the HTTP routes
// find a file by its record, not by a path.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { StorageBackend, UploadRecord, UploadRecordStore } from './types.ts';

/** More bytes arrived than the file may have. */
export class BlobTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`more than ${limit} bytes`);
  }
}

/** The stream ended before the announced size. */
export class BlobIncompleteError extends Error {
  constructor(
    readonly received: number,
    readonly expected: number,
  ) {
    super(`received ${received} of ${expected} bytes`);
  }
}

export const UPLOAD_ID = /^[A-Za-z0-9_-]{24}$/;

export class UploadFileStore {
  readonly records: UploadRecordStore;
  readonly dir: string;

  constructor(backend: StorageBackend, dir: string) {
    this.records = backend.uploadRecords();
    this.dir = resolve(dir);
  }

  /** Where a complete file lives. Ids are checked: a path is never built from anything else. */
  blobPath(id: string): string {
    if (!UPLOAD_ID.test(id)) throw new Error(`not an upload id: ${id}`);
    return join(this.dir, id.slice(0, 2), id);
  }

  private partPath(id: string): string {
    return `${this.blobPath(id)}.part`;
  }

  /**
   * Streams `source` to disk as file `id`, never holding more than a chunk in
   * memory. Refuses (and removes the partial file) as soon as more than
   * `limit` bytes arrive, or when `expected` is given and the stream ends
   * short of it. Resolves with the size once the file is flushed and in place.
   */
  async write(id: string, source: Readable | AsyncIterable<Uint8Array>, limit: number, expected?: number): Promise<number> {
    const part = this.partPath(id);
    await mkdir(join(this.dir, id.slice(0, 2)), { recursive: true, mode: 0o700 });
    let bytes = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        bytes += chunk.length;
        if (bytes > limit) done(new BlobTooLargeError(limit));
        else done(null, chunk);
      },
    });
    try {
      // 'wx': an id is never reused, so an existing file means a bug, not an overwrite.
      await pipeline(source, counter, createWriteStream(part, { flags: 'wx', mode: 0o600, flush: true }));
      if (expected !== undefined && bytes !== expected) throw new BlobIncompleteError(bytes, expected);
      await rename(part, this.blobPath(id));
    } catch (err) {
      await rm(part, { force: true });
      throw err;
    }
    return bytes;
  }

  /** The file's size on disk, or null when it is missing. */
  async size(id: string): Promise<number | null> {
    const info = await stat(this.blobPath(id)).catch(() => null);
    return info?.isFile() ? info.size : null;
  }

  /** A stream of the file's bytes, `start`..`end` inclusive. */
  read(id: string, range?: { start: number; end: number }): Readable {
    return createReadStream(this.blobPath(id), range);
  }

  /** Removes the file (whole or partial) and its record. */
  async remove(record: UploadRecord): Promise<void> {
    await rm(this.blobPath(record.id), { force: true });
    await rm(this.partPath(record.id), { force: true });
    await this.records.delete(record.id);
  }

  /** Removes every file and slot of one user; returns how many. */
  async removeOwner(owner: string): Promise<number> {
    const records = await this.records.byOwner(owner);
    for (const r of records) await this.remove(r);
    return records.length;
  }
}

/** Account deletion: a user's uploaded files, also when the server is not running (CLI). */
export function deleteUserUploads(backend: StorageBackend, dir: string, owner: string): Promise<number> {
  return new UploadFileStore(backend, dir).removeOwner(owner);
}
