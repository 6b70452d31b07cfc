// The single executable (`npm run build:binary`, a Node single executable
// application) carries what cannot be bundled as JavaScript: the native
// addons of classic-level and sharp (with libvips), and Converse.js's files.
// They travel as SEA assets and are written once, on first use, to a private
// folder (0700, owned by us, named after their content hash) from which
// the addons are loaded with process.dlopen and the web client is served.
// Outside the executable nothing here runs.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { getRawAsset, isSea } from 'node:sea';

/** What the build put in the executable (defined by scripts/build-binary.mjs). */
interface AssetManifest {
  /** Content hash of every asset: a new build extracts to a new folder. */
  id: string;
  /** Asset key → path inside the extraction folder. */
  files: Record<string, string>;
  /** Addon name → asset key of its .node file. */
  addons: Record<string, string>;
  /** Packs (many small files in one asset) → folder they unpack to. */
  packs: Record<string, string>;
}

declare const JABBERFLY_ASSETS: AssetManifest | undefined;

export function insideExecutable(): boolean {
  return typeof JABBERFLY_ASSETS !== 'undefined' && isSea();
}

let extracted: string | null = null;

/** The folder holding the extracted assets (written on first call). */
export function assetDir(): string {
  if (extracted) return extracted;
  if (typeof JABBERFLY_ASSETS === 'undefined') throw new Error('not running as the single executable');
  const manifest = JABBERFLY_ASSETS;
  const base = privateBase();
  const dir = join(base, `assets-${manifest.id}`);
  if (!existsSync(dir)) {
    // Written beside, then renamed into place: a crash or a second process
    // starting at the same time never leaves a half-written folder in use.
    const tmp = join(base, `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
    mkdirSync(tmp, { mode: 0o700 });
    try {
      for (const [key, rel] of Object.entries(manifest.files))
        writeAsset(join(tmp, rel), Buffer.from(getRawAsset(key) as ArrayBuffer));
      for (const [key, rel] of Object.entries(manifest.packs))
        unpack(Buffer.from(getRawAsset(key) as ArrayBuffer), join(tmp, rel));
      try {
        renameSync(tmp, dir);
      } catch (err) {
        if (!existsSync(dir)) throw err;
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  extracted = dir;
  return dir;
}

/** Loads a native addon carried by the executable. */
export function loadAddon(name: string): unknown {
  if (typeof JABBERFLY_ASSETS === 'undefined') throw new Error('not running as the single executable');
  const key = JABBERFLY_ASSETS.addons[name];
  if (!key) throw new Error(`the executable carries no addon '${name}'`);
  const module = { exports: {} as unknown };
  process.dlopen(module, join(assetDir(), JABBERFLY_ASSETS.files[key]!));
  return module.exports;
}

/** Converse.js's dist folder, as extracted from the executable. */
export function converseDir(): string {
  return join(assetDir(), 'converse');
}

/**
 * A folder only we can write: $JABBERFLY_RUNTIME_DIR, systemd's
 * $CACHE_DIRECTORY, the XDG cache, or one in the temp folder. Code is loaded
 * from it, so one that another user owns or can write is refused.
 */
function privateBase(): string {
  const uid = process.getuid?.() ?? 0;
  const home = homedir();
  const base =
    process.env.JABBERFLY_RUNTIME_DIR ||
    process.env.CACHE_DIRECTORY?.split(':')[0] ||
    (process.env.XDG_CACHE_HOME ? join(process.env.XDG_CACHE_HOME, 'jabberfly') : '') ||
    (home && existsSync(home) ? join(home, '.cache', 'jabberfly') : '') ||
    join(tmpdir(), `jabberfly-${uid}`);
  mkdirSync(base, { recursive: true, mode: 0o700 });
  const st = lstatSync(base);
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) {
    throw new Error(
      `${base} must be a folder owned by this user and writable by no one else (it holds code)`,
    );
  }
  return base;
}

function writeAsset(file: string, data: Buffer): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, data, { mode: 0o600 });
}

/** A pack is [u32 index length][JSON {path: [offset, length]}][bytes]. */
function unpack(pack: Buffer, into: string): void {
  const indexLength = pack.readUInt32LE(0);
  const index = JSON.parse(pack.subarray(4, 4 + indexLength).toString('utf8')) as Record<
    string,
    [number, number]
  >;
  const data = pack.subarray(4 + indexLength);
  for (const [rel, [offset, length]] of Object.entries(index)) {
    if (rel.split('/').includes('..')) throw new Error(`bad path in the asset pack: ${rel}`);
    writeAsset(join(into, rel), data.subarray(offset, offset + length));
  }
  chmodSync(into, 0o700);
}
