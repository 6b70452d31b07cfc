// Files between MSN and XMPP.
//
// MSN → XMPP: a contact's MSNP2P file offer is accepted when it fits
// `msn.fileMaxBytes` (and the upload service's limit), the bytes are stored
// for the user, and the user gets a message from the contact with the URL
// (as the body, and as XEP-0066 OOB). The store is the HTTP upload service
// (its in-process storeFile API: the user's quota, expiry and account
// deletion apply) for local users when it runs; otherwise the transport's
// own, served by the https service under /msn-files/ for
// `msn.fileRetentionHours`. A file too large, or with nowhere to serve it
// from, is declined and the user told why.
//
// XMPP → MSN: a message whose URL (XEP-0066 OOB, or a body that is just an
// XEP-0363 upload URL) names a file this server holds goes to the contact as
// an MSNP2P transfer when the contact's client can take one, and as a link
// (the text) otherwise — or when the contact declines, or the file is too large.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FileOffer, MsnSession } from '../../msnp/index.ts';
import { MsnFileStore } from '../../storage/msn-files.ts';
import { UploadError, uploadServiceOf } from '../../upload/upload-service.ts';
import { el } from '../../xml/element.ts';
import { NS } from '../../xml/namespaces.ts';
import type { MsnGateway } from './gateway.ts';

export const MSN_FILES_PATH = '/msn-files/';
/** Files one user keeps in the transport's own store; older ones go first. */
const MAX_FILES_PER_USER = 50;
const SWEEP_EVERY_MS = 3600_000;

const TYPES: Record<string, string> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  bmp: 'image/bmp',
  txt: 'text/plain; charset=utf-8',
  pdf: 'application/pdf',
  zip: 'application/zip',
  mp3: 'audio/mpeg',
  ogg: 'audio/ogg',
  mp4: 'video/mp4',
  wav: 'audio/wav',
};
/** Shown in the browser rather than downloaded: images only (never HTML or SVG from strangers). */
const INLINE = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/bmp']);

export function contentTypeOf(filename: string): string {
  const ext = /\.([A-Za-z0-9]+)$/.exec(filename)?.[1]?.toLowerCase() ?? '';
  return TYPES[ext] ?? 'application/octet-stream';
}

/** A file name safe to put in a URL path and a header: no separators, no control characters. */
function safeName(name: string): string {
  const cleaned = name.replace(/[\u0000-\u001f\u007f/\\]/g, '_').trim().slice(0, 200);
  return cleaned === '' || cleaned === '.' || cleaned === '..' ? 'file' : cleaned;
}

export interface ServedFile {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

export class GatewayFiles {
  private readonly store: MsnFileStore;
  /** https://host:port of the https service, once it listens; null while files cannot be served. */
  private baseUrl: string | null = null;
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly gw: MsnGateway) {
    this.store = gw.server.store(MsnFileStore);
    this.sweeper = setInterval(() => {
      this.store.sweep().catch((err) => gw.host.log.warn('file sweep failed', { error: String(err) }));
    }, SWEEP_EVERY_MS);
    this.sweeper.unref();
    gw.host.onStop(async () => clearInterval(this.sweeper));
  }

  /** The https service says where it listens (null: no https, files cannot be served). */
  setHttpsPort(port: number | null): void {
    this.baseUrl = port === null ? null : `https://${this.gw.server.config.domain}:${port}`;
  }

  /** The upload service, when it can hand out URLs. */
  private upload() {
    const u = uploadServiceOf(this.gw.server);
    return u?.available ? u : undefined;
  }

  get available(): boolean {
    return this.baseUrl !== null || this.upload() !== undefined;
  }

  /** Largest file taken from MSN for `owner` (the upload service's limit applies to its files too). */
  private limitFor(owner?: string): number {
    const own = this.gw.server.config.msn.fileMaxBytes;
    const upload = this.upload();
    return upload && owner !== undefined && this.isLocal(owner) ? Math.min(own, upload.maxFileSize) : own;
  }

  private get limit(): number {
    return this.gw.server.config.msn.fileMaxBytes;
  }

  private isLocal(bare: string): boolean {
    return bare.endsWith(`@${this.gw.server.config.domain}`);
  }

  /** Keeps `data` for `owner`; resolves with its URL. Refusals of the upload service (quota) are thrown. */
  async put(owner: string, filename: string, data: Buffer): Promise<string> {
    const upload = this.upload();
    if (upload && this.isLocal(owner)) {
      try {
        const stored = await upload.storeFile({
          owner,
          filename: safeName(filename),
          contentType: contentTypeOf(filename),
          size: data.length,
          source: Readable.from([data]),
        });
        return stored.url;
      } catch (err) {
        if (!(err instanceof UploadError && err.reason === 'unavailable')) throw err;
      }
    }
    if (!this.baseUrl) throw new Error('no https service to serve files from');
    const name = safeName(filename);
    const id = randomBytes(18).toString('base64url');
    const hours = this.gw.server.config.msn.fileRetentionHours;
    await this.store.put(
      id,
      { owner, filename: name, contentType: contentTypeOf(name), expires: Date.now() + hours * 3600_000, data: data.toString('base64') },
      MAX_FILES_PER_USER,
    );
    return `${this.baseUrl}${MSN_FILES_PATH}${id}/${encodeURIComponent(name)}`;
  }

  /** The bytes behind a URL this server handed out (an upload, or a file kept here), if it still holds them. */
  async read(url: string): Promise<{ filename: string; data: Buffer } | undefined> {
    const upload = this.upload();
    if (upload?.origin && url.startsWith(`${upload.origin}/`)) {
      // Upload URLs end in /<id>/<filename>; find() checks both.
      const parts = new URL(url).pathname.split('/');
      const [id = '', name = ''] = parts.slice(-2);
      let filename = '';
      try {
        filename = decodeURIComponent(name);
      } catch {
        return undefined;
      }
      const record = await upload.find(id, filename);
      if (!record || record.size > this.limit) return undefined;
      const chunks: Buffer[] = [];
      for await (const chunk of upload.files.read(record.id)) chunks.push(Buffer.from(chunk as Uint8Array));
      return { filename: record.filename, data: Buffer.concat(chunks) };
    }
    if (!this.baseUrl || !url.startsWith(`${this.baseUrl}${MSN_FILES_PATH}`)) return undefined;
    const id = url.slice(this.baseUrl.length + MSN_FILES_PATH.length).split('/')[0] ?? '';
    const f = await this.store.get(id);
    return f ? { filename: f.filename, data: Buffer.from(f.data, 'base64') } : undefined;
  }

  /** GET /msn-files/<id>/<name> on the https service. */
  async serve(path: string): Promise<ServedFile> {
    const [id = '', ...rest] = path.slice(MSN_FILES_PATH.length).split('/');
    const f = /^[A-Za-z0-9_-]{10,64}$/.test(id) ? await this.store.get(id) : undefined;
    let name = '';
    try {
      name = decodeURIComponent(rest.join('/'));
    } catch {
      name = '';
    }
    if (!f || name !== f.filename) {
      return { status: 404, headers: { 'Content-Type': 'text/plain; charset=utf-8' }, body: Buffer.from('not found\n') };
    }
    const inline = INLINE.has(f.contentType);
    return {
      status: 200,
      headers: {
        'Content-Type': inline || f.contentType.startsWith('text/plain') ? f.contentType : 'application/octet-stream',
        'Content-Disposition': `${inline ? 'inline' : 'attachment'}; filename*=UTF-8''${encodeURIComponent(f.filename)}`,
        'Content-Security-Policy': "default-src 'none'; sandbox",
        'Cache-Control': 'private, max-age=3600',
      },
      body: Buffer.from(f.data, 'base64'),
    };
  }

  // ------------------------------------------------------------ MSN → XMPP

  /** A contact offers the user a file. */
  async onOffer(user: string, contactJid: string, offer: FileOffer): Promise<void> {
    const tell = (text: string) => this.gw.send(el('message', { type: 'chat', from: contactJid, to: user }, el('body', null, text)));
    const limit = this.limitFor(user);
    if (offer.size > limit) {
      offer.decline();
      tell(`${offer.from} wanted to send you "${offer.name}" (${offer.size} bytes), larger than this server takes over MSN (${limit} bytes).`);
      return;
    }
    if (!this.available) {
      offer.decline();
      tell(`${offer.from} wanted to send you "${offer.name}", but this server has nowhere to keep files from MSN (no https service).`);
      return;
    }
    let data: Buffer;
    try {
      data = await offer.accept(limit);
    } catch (err) {
      tell(`The file "${offer.name}" from ${offer.from} did not arrive: ${(err as Error).message}`);
      return;
    }
    let url: string;
    try {
      url = await this.put(user, offer.name, data);
    } catch (err) {
      tell(`The file "${offer.name}" from ${offer.from} could not be kept: ${(err as Error).message}`);
      return;
    }
    this.gw.host.log.debug('msn file received', { user, contact: offer.from, bytes: data.length });
    this.gw.send(
      el(
        'message',
        { type: 'chat', from: contactJid, to: user },
        el('body', null, url),
        el('x', { xmlns: NS.oob }, el('url', null, url), el('desc', null, offer.name)),
      ),
    );
  }

  // ------------------------------------------------------------ XMPP → MSN

  /**
   * Tries to pass `url` to `email` as an MSNP2P file transfer: resolves true
   * when the contact accepted every byte, false when the URL should go as
   * a link instead (not a file held here, too large, contact offline or
   * without P2P, declined, failed).
   */
  async sendAsTransfer(msn: MsnSession, email: string, url: string): Promise<boolean> {
    const contact = msn.getContact(email);
    // MSNC1 and later (the top nibble of the capabilities) carry P2P file transfers.
    if (!contact || contact.status === 'FLN' || contact.clientId >>> 28 < 1) return false;
    const file = await this.read(url);
    if (!file || file.data.length > this.limit) return false;
    try {
      return (await msn.sendFile(email, file.filename, file.data)) === 'accepted';
    } catch (err) {
      this.gw.host.log.info('msn file transfer failed', { contact: email, error: (err as Error).message });
      return false;
    }
  }
}
