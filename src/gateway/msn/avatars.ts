// Avatars between MSN display pictures and XMPP avatars. Contacts' pictures
// are fetched over MSNSLP once, converted to PNG when they are not one, and
// kept in the server's avatar cache (storage/avatars.ts, by the PNG's SHA-1,
// aliased by MSNObject SHA1D), so each picture crosses the network once for
// every user of the server and serves vCard PHOTOs, XEP-0153 hashes and
// XEP-0084 items alike. The user's own avatar becomes a 96×96 PNG, cached
// the same way.
// Every decode runs with a byte and pixel limit: a corrupt file or a
// decompression bomb is refused, never crashes the process.
import { createHash } from 'node:crypto';
import sharp, { type Sharp } from 'sharp';
import type { ServerContext } from '../../host/context.ts';
import { AvatarStore } from '../../storage/avatars.ts';

export interface CachedAvatar {
  /** Hex SHA-1 of the PNG bytes: the XEP-0153 photo hash and XEP-0084 item id. */
  hash: string;
  png: Buffer;
  width?: number;
  height?: number;
}

export class AvatarError extends Error {}

export const OWN_AVATAR_SIZE = 96;

export class AvatarCache {
  private readonly store: AvatarStore;
  private readonly maxBytes: number;
  private readonly maxPixels: number;

  constructor(server: ServerContext) {
    this.store = server.store(AvatarStore);
    this.maxBytes = server.config.msn.avatarMaxBytes;
    this.maxPixels = server.config.msn.avatarMaxPixels;
  }

  /** The cached picture for an MSNObject SHA1D, if fetched before. */
  async get(sha1d: string): Promise<CachedAvatar | undefined> {
    const a = await this.store.byAlias(`msn:${sha1d}`);
    return a && { hash: a.hash, png: a.data, width: a.width, height: a.height };
  }

  /** A cached picture by its own hash (an XEP-0084 item id). */
  async byHash(hash: string): Promise<CachedAvatar | undefined> {
    const a = await this.store.get(hash);
    return a && { hash: a.hash, png: a.data, width: a.width, height: a.height };
  }

  /** Converts a fetched picture to PNG and caches it under its SHA1D. */
  async put(sha1d: string, data: Buffer): Promise<CachedAvatar> {
    const png = await this.toPng(data);
    const meta = await sharp(png, { limitInputPixels: this.maxPixels }).metadata();
    const a = await this.store.put(png, 'image/png', { width: meta.width, height: meta.height });
    await this.store.setAlias(`msn:${sha1d}`, a.hash);
    return { hash: a.hash, png, width: a.width, height: a.height };
  }

  /** Any supported image → PNG; PNGs pass through byte for byte after a check. */
  async toPng(data: Buffer): Promise<Buffer> {
    const image = this.open(data);
    const meta = await image.metadata().catch((err: Error) => {
      throw new AvatarError(`not a usable image: ${err.message}`);
    });
    if (meta.format === 'png') {
      // Decode fully once, so a truncated or corrupt PNG is refused here.
      await image.raw().toBuffer().catch((err: Error) => {
        throw new AvatarError(`corrupt PNG: ${err.message}`);
      });
      return data;
    }
    return this.open(data)
      .png()
      .toBuffer()
      .catch((err: Error) => {
        throw new AvatarError(`cannot convert image: ${err.message}`);
      });
  }

  /** The user's avatar as the square PNG MSN clients expect (converted once per image). */
  async ownAvatar(data: Buffer): Promise<Buffer> {
    const key = `msn-own:${sha1Hex(data)}`;
    const cached = await this.store.byAlias(key);
    if (cached) return cached.data;
    const png = await this.open(data)
      .resize(OWN_AVATAR_SIZE, OWN_AVATAR_SIZE, { fit: 'cover' })
      .png()
      .toBuffer()
      .catch((err: Error) => {
        throw new AvatarError(`not a usable image: ${err.message}`);
      });
    const a = await this.store.put(png, 'image/png', { width: OWN_AVATAR_SIZE, height: OWN_AVATAR_SIZE });
    await this.store.setAlias(key, a.hash);
    return png;
  }

  private open(data: Buffer): Sharp {
    if (data.length === 0) throw new AvatarError('empty image');
    if (data.length > this.maxBytes) throw new AvatarError(`image larger than ${this.maxBytes} bytes`);
    return sharp(data, { limitInputPixels: this.maxPixels, failOn: 'error' });
  }
}

export function sha1Hex(data: Buffer): string {
  return createHash('sha1').update(data).digest('hex');
}
