// The capability in a slot's PUT URL. The GET URL of a file is public (it
// is shared in chats) and has the same path, so what lets its owner PUT is
// an HMAC over everything the slot fixes (id, name, size, type, deadline)
// with a server key kept in storage: a changed field or a guessed token is
// refused.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { loadServerSecret } from '../auth/server-secret.ts';
import type { StorageBackend } from '../storage/types.ts';

export interface PutTokenFields {
  id: string;
  filename: string;
  size: number;
  contentType: string;
  /** Epoch ms the URL stops working. */
  expires: number;
}

export class PutTokens {
  private constructor(private readonly key: Buffer) {}

  /** Loads the key (a server secret, created on first start), so URLs survive a restart. */
  static async load(backend: StorageBackend): Promise<PutTokens> {
    return new PutTokens(await loadServerSecret(backend, 'upload-put-key'));
  }

  sign(f: PutTokenFields): string {
    // Newlines cannot occur in an id, a number or a content type, and the
    // filename is last, so the fields cannot be shifted into one another.
    return createHmac('sha256', this.key)
      .update(`put\n${f.id}\n${f.size}\n${f.contentType}\n${f.expires}\n${f.filename}`)
      .digest('base64url');
  }

  verify(f: PutTokenFields, token: string): boolean {
    const want = Buffer.from(this.sign(f));
    const got = Buffer.from(token);
    return got.length === want.length && timingSafeEqual(got, want);
  }
}
