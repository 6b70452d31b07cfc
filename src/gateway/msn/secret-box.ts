// Encryption at rest for the MSN passwords the transport must replay at
// every login (they cannot be hashed). AES-256-GCM with a key generated on
// first start into a 0600 file (msn.keyFile; by default transport.key in
// tls.dir) kept apart from the store, so a copy of the database, or a
// backup of it, alone does not reveal them. Stores made by older versions
// kept the key inside storage.path: it is moved out on start.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Config } from '../../config/schema.ts';
import type { Logger } from '../../log.ts';
import { errnoText } from '../../storage/level-folder.ts';

/** Where the transport key lives: msn.keyFile, else transport.key in tls.dir. */
export function transportKeyFile(config: Config): string {
  return resolve(config.msn.keyFile || join(config.tls.dir, 'transport.key'));
}

/** Where versions before msn.keyFile kept it: inside the store folder. */
export function legacyTransportKeyFile(config: Config): string {
  return resolve(config.storage.path, 'transport.key');
}

/** The key cannot be read, made or moved; the message names the file and the error. */
export class TransportKeyError extends Error {}

export class SecretBox {
  private constructor(private readonly key: Buffer) {}

  /** The configured key: moved from its old place when found there, created (0600) when missing. */
  static forConfig(config: Config, log?: Logger): SecretBox {
    const file = transportKeyFile(config);
    const legacy = legacyTransportKeyFile(config);
    if (legacy !== file && existsSync(legacy)) moveLegacyKey(legacy, file, log);
    return SecretBox.open(file);
  }

  /** Loads the key from `file`, creating it (mode 0600) when missing. */
  static open(file: string): SecretBox {
    try {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new TransportKeyError(`cannot create the folder of the transport key ${dirname(file)}: ${errnoText(err)}`);
    }
    if (!existsSync(file)) {
      try {
        writeFileSync(file, randomBytes(32).toString('base64'), { mode: 0o600, flag: 'wx' });
      } catch (err) {
        // Another worker sharing this folder made it first: use theirs.
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new TransportKeyError(`cannot create the transport key ${file}: ${errnoText(err)}`);
        }
      }
    }
    let key: Buffer;
    try {
      chmodSync(file, 0o600);
      key = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
    } catch (err) {
      throw new TransportKeyError(`cannot read the transport key ${file}: ${errnoText(err)}`);
    }
    if (key.length !== 32) throw new TransportKeyError(`${file} does not hold a 256-bit key`);
    return new SecretBox(key);
  }

  seal(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const data = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return [iv, cipher.getAuthTag(), data].map((b) => b.toString('base64')).join('.');
  }

  open(sealed: string): string {
    const [iv, tag, data] = sealed.split('.').map((s) => Buffer.from(s, 'base64'));
    if (!iv || !tag || !data) throw new Error('malformed sealed secret');
    const decipher = createDecipheriv('aes-256-gcm', this.key, iv);
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(data), decipher.final()]).toString('utf8');
  }
}

/**
 * An install from before msn.keyFile: its key (the one that opens the MSN
 * passwords already stored) goes to the new place. Two different keys are
 * not guessed between: the server refuses to start and says which is which.
 */
function moveLegacyKey(legacy: string, file: string, log?: Logger): void {
  let old: string;
  try {
    old = readFileSync(legacy, 'utf8');
  } catch (err) {
    // Another worker of this node moved it first.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new TransportKeyError(`cannot read the transport key ${legacy}: ${errnoText(err)}`);
  }
  if (existsSync(file)) {
    if (readFileSync(file, 'utf8').trim() !== old.trim()) {
      throw new TransportKeyError(
        `two different transport keys: ${legacy} (where older versions kept it) and ${file} (msn.keyFile). ` +
          `The stored MSN passwords were sealed with the old one, unless it was put there after: ` +
          `move the one that works to ${file} and delete the other`,
      );
    }
    rmSync(legacy, { force: true });
    log?.info('removed the old copy of the transport key from the store folder', { file: legacy, key: file });
    return;
  }
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    try {
      renameSync(legacy, file);
    } catch (err) {
      // Another worker of this node moved it first.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      // Another file system: copied (exclusively), then the old one removed.
      copyFileSync(legacy, file, 1 /* COPYFILE_EXCL */);
      unlinkSync(legacy);
    }
    chmodSync(file, 0o600);
  } catch (err) {
    throw new TransportKeyError(`cannot move the transport key from ${legacy} to ${file}: ${errnoText(err)}`);
  }
  log?.info('moved the transport key out of the store folder', { from: legacy, to: file });
}
