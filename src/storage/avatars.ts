// One avatar cache for the whole server, keyed by the SHA-1 of the image
// bytes: the XEP-0153 photo hash and the XEP-0084 item id of that image are
// the same string, so one entry serves a vCard PHOTO, a presence hash, an
// XEP-0084 data/metadata item and an MSN display picture. Images reach it
// already converted (the MSN transport stores PNGs); other keys (an MSN
// MSNObject SHA1D, "the 96×96 version of image X") point at entries through
// aliases, so a conversion or a download happens once.
import type { ServerContext } from '../host/context.ts';
import { createHash } from 'node:crypto';
import type { KeyValueStore, StorageBackend } from './types.ts';

export interface Avatar {
  /** Hex SHA-1 of `data`. */
  hash: string;
  /** MIME type, e.g. image/png. */
  type: string;
  data: Buffer;
  width?: number;
  height?: number;
}

interface Stored {
  type: string;
  data: string;
  width?: number;
  height?: number;
}

export class AvatarStore {
  private readonly images: KeyValueStore<Stored>;
  private readonly aliases: KeyValueStore<string>;

  constructor(backend: StorageBackend, _server: ServerContext) {
    this.images = backend.keyValue('avatars');
    this.aliases = backend.keyValue('avatar-aliases');
  }

  async get(hash: string): Promise<Avatar | undefined> {
    const s = await this.images.get(hash);
    return s ? { hash, type: s.type, data: Buffer.from(s.data, 'base64'), width: s.width, height: s.height } : undefined;
  }

  /** Stores an image (once per content); returns its entry. */
  async put(data: Buffer, type: string, size?: { width?: number; height?: number }): Promise<Avatar> {
    const hash = sha1Hex(data);
    if (!(await this.images.get(hash))) {
      await this.images.set(hash, { type, data: data.toString('base64'), width: size?.width, height: size?.height });
    }
    return { hash, type, data, width: size?.width, height: size?.height };
  }

  /** The entry another key (e.g. `msn:<SHA1D>`) points at. */
  async byAlias(key: string): Promise<Avatar | undefined> {
    const hash = await this.aliases.get(key);
    return hash ? this.get(hash) : undefined;
  }

  setAlias(key: string, hash: string): Promise<void> {
    return this.aliases.set(key, hash);
  }
}

export function sha1Hex(data: Buffer): string {
  return createHash('sha1').update(data).digest('hex');
}
