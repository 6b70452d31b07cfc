// Avatars between MSN display pictures and vCard PHOTOs. Contacts' pictures
// are fetched over MSNSLP once, converted to PNG when they are not one, and
// cached by their MSNObject SHA1D, so each picture crosses the network once
// for every user of the server. The user's own PHOTO becomes a 96×96 PNG.
// Every decode runs with a byte and pixel limit: a corrupt file or a
// decompression bomb is refused, never crashes the process.
import { createHash } from 'node:crypto';
import sharp, { type Sharp } from 'sharp';
import type { ServerContext } from '../../host/context.ts';
import type { KeyValueStore } from '../../storage/types.ts';

export interface CachedAvatar {
  /** Hex SHA-1 of the PNG bytes: the XEP-0153 photo hash. */
  hash: string;
  png: Buffer;
}

export class AvatarError extends Error {}

export const OWN_AVATAR_SIZE = 96;

export class AvatarCache {
  private readonly kv: KeyValueStore<{ hash: string; png: string }>;
  private readonly maxBytes: number;
  private readonly maxPixels: number;

  constructor(server: ServerContext) {
    this.kv = server.storage.keyValue('msn-avatars');
    this.maxBytes = server.config.msn.avatarMaxBytes;
    this.maxPixels = server.config.msn.avatarMaxPixels;
  }

  /** The cached picture for an MSNObject SHA1D, if fetched before. */
  async get(sha1d: string): Promise<CachedAvatar | undefined> {
    const v = await this.kv.get(sha1d);
    return v ? { hash: v.hash, png: Buffer.from(v.png, 'base64') } : undefined;
  }

  /** Converts a fetched picture to PNG and caches it under its SHA1D. */
  async put(sha1d: string, data: Buffer): Promise<CachedAvatar> {
    const png = await this.toPng(data);
    const avatar = { hash: sha1Hex(png), png };
    await this.kv.set(sha1d, { hash: avatar.hash, png: png.toString('base64') });
    return avatar;
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

  /** The user's vCard PHOTO as the square PNG MSN clients expect. */
  async ownAvatar(data: Buffer): Promise<Buffer> {
    return this.open(data)
      .resize(OWN_AVATAR_SIZE, OWN_AVATAR_SIZE, { fit: 'cover' })
      .png()
      .toBuffer()
      .catch((err: Error) => {
        throw new AvatarError(`not a usable image: ${err.message}`);
      });
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
