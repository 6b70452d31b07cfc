// The LevelDB folder is checked before LevelDB sees it. LevelDB, asked to
// open a folder without its CURRENT file, starts an empty database there
// and later deletes the table files it does not know: every account gone,
// silently. So a store is created only in an empty (or missing) folder; a
// folder that holds anything else must hold an intact store (CURRENT naming
// a MANIFEST that exists), or the server refuses to start, naming the
// folder, the file and what to do. The folder is 0700 and its files 0600
// (SCRAM keys): fixed on every open for stores made by older versions.
import { accessSync, chmodSync, constants, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The store folder is unusable as it is; the message says why and what to do. */
export class StorageFolderError extends Error {}

/** Files of jabberfly's own that may sit in the folder (the admin socket, a transport key before its move). */
const OWN_FILES = new Set(['admin.sock', 'transport.key']);
/** LevelDB files that hold no data: a folder with only these is still empty. */
const NO_DATA = new Set(['LOCK', 'LOG', 'LOG.old']);

const WHAT_TO_DO =
  'Restore it from a backup (stop the server, move the folder away, then `jabberfly restore FILE`), ' +
  'or try `jabberfly repair-storage`, which rebuilds the metadata from the table files ' +
  '(copy the folder somewhere first). Nothing was changed.';

/** "ENOTDIR (not a directory)" from a failed file-system call. */
export function errnoText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const detail = e.message?.replace(/^[A-Z]+: /, '').replace(/, \w+ '.*'$/, '');
  return e.code ? `${e.code} (${detail})` : String(e.message ?? err);
}

/**
 * Makes sure `path` can hold a LevelDB store; returns true when it holds
 * none yet (LevelDB may create one). Throws StorageFolderError otherwise.
 */
export function prepareLevelFolder(path: string): boolean {
  try {
    mkdirSync(path, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new StorageFolderError(`cannot create the storage folder ${path}: ${errnoText(err)}`);
  }
  let entries: string[];
  try {
    if (!lstatSync(path).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    accessSync(path, constants.R_OK | constants.W_OK | constants.X_OK);
    entries = readdirSync(path);
  } catch (err) {
    throw new StorageFolderError(`the storage folder ${path} is not usable: ${errnoText(err)}`);
  }
  if (!entries.includes('CURRENT')) {
    const foreign = entries.filter((e) => !OWN_FILES.has(e) && !NO_DATA.has(e));
    if (foreign.length === 0) {
      restrict(path, entries);
      return true;
    }
    const shown = foreign.slice(0, 5).join(', ') + (foreign.length > 5 ? ', ...' : '');
    throw new StorageFolderError(
      `the storage folder ${path} is not empty but has no CURRENT file (LevelDB's pointer to its metadata), ` +
        `so it is not an intact store (${foreign.length} other file${foreign.length === 1 ? '' : 's'}: ${shown}); ` +
        `opening it would start an empty database and delete those files. ${WHAT_TO_DO} ` +
        `If these files are not a jabberfly store, set storage.path to an empty folder.`,
    );
  }
  const currentFile = join(path, 'CURRENT');
  let current: string;
  try {
    current = readFileSync(currentFile, 'utf8');
  } catch (err) {
    throw new StorageFolderError(`cannot read ${currentFile}: ${errnoText(err)}`);
  }
  const named = /^(MANIFEST-\d+)\n?$/.exec(current)?.[1];
  if (!named) {
    const shown = JSON.stringify(current.slice(0, 40));
    throw new StorageFolderError(
      `the store in ${path} is damaged: ${currentFile} is corrupt (it must name a MANIFEST file; it holds ${shown}). ${WHAT_TO_DO}`,
    );
  }
  const manifest = join(path, named);
  if (!existsSync(manifest)) {
    throw new StorageFolderError(
      `the store in ${path} is damaged: ${manifest}, which CURRENT names, is missing. ${WHAT_TO_DO}`,
    );
  }
  if (lstatSync(manifest).size === 0) {
    throw new StorageFolderError(`the store in ${path} is damaged: ${manifest} is empty. ${WHAT_TO_DO}`);
  }
  restrict(path, entries);
  return false;
}

/** Folder 0700, its regular files 0600 (stores made before this was enforced, or under a loose umask). */
export function restrict(path: string, entries = readdirSync(path)): void {
  try {
    chmodSync(path, 0o700);
    for (const e of entries) {
      const file = join(path, e);
      const st = lstatSync(file, { throwIfNoEntry: false });
      if (!st?.isFile() || (st.mode & 0o777) === 0o600) continue;
      try {
        chmodSync(file, 0o600);
      } catch (err) {
        // A running server's compaction may have removed it meanwhile.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  } catch (err) {
    throw new StorageFolderError(`cannot restrict the permissions of the storage folder ${path}: ${errnoText(err)}`);
  }
}
