// The upload service's policy, shared in-process by the XMPP side
// (slot requests on upload.<domain>, modules/http-upload.ts), the HTTP side
// (PUT/GET, websocket/upload-routes.ts) and other features that store a
// file they received (`storeFile`, e.g. the MSN transport's file
// transfers). It decides sizes, quotas, URLs and lifetimes; the bytes and
// records go through `UploadFileStore`.
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { format as formatContentType, parse as parseContentType } from 'content-type';
import type { ServerContext } from '../host/context.ts';
import type { Logger } from '../log.ts';
import { BlobIncompleteError, BlobTooLargeError, UploadFileStore } from '../storage/uploads.ts';
import type { UploadRecord } from '../storage/types.ts';
import { KeyedMutex } from '../util/keyed-mutex.ts';
import { PutTokens } from './put-token.ts';

/** Why a slot or a stored file was refused. */
export type UploadRefusal =
  /** Larger than upload.maxFileSize (`maxFileSize` says how large may be). */
  | 'too-large'
  /** Over the owner's quota or open-slot limit (`retryAt`, when known, says when it frees up). */
  | 'quota'
  /** No public URL can be made (no https listener and no upload.url). */
  | 'unavailable'
  /** The stream ended short of the announced size. */
  | 'incomplete'
  | 'bad-request';

export class UploadError extends Error {
  constructor(
    readonly reason: UploadRefusal,
    message: string,
    readonly details: { maxFileSize?: number; retryAt?: number } = {},
  ) {
    super(message);
  }
}

export interface Slot {
  putUrl: string;
  getUrl: string;
  record: UploadRecord;
}

/** A file stored with `storeFile`. */
export interface StoredFile {
  id: string;
  url: string;
  filename: string;
  size: number;
  contentType: string;
  /** Epoch ms it will be removed, or null. */
  expires: number | null;
}

/** What `storeFile` takes: the file's bytes as a stream and who it belongs to. */
export interface StoreFileOptions {
  /** Bare JID of the local user the file is for: it counts against their quota and goes with their account. */
  owner: string;
  filename: string;
  /** A MIME type; application/octet-stream when missing or invalid. */
  contentType?: string;
  /** The size when known in advance (refused early if too large, and checked at the end). */
  size?: number;
  source: Readable | AsyncIterable<Uint8Array>;
}

/** Why a PUT was refused, as an HTTP status and a line of text. */
export class PutRefused extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** What a PUT request brings, as the HTTP layer read it. */
export interface PutRequest {
  id: string;
  filename: string;
  expires: string | null;
  token: string | null;
  contentLength: number | null;
  contentType: string | null;
  body: Readable;
  /** Called once the request passed every check, before the body is read (HTTP 100 Continue). */
  accepted(): void;
}

/** Longest filename a slot may carry (characters); longer is a bad request. */
export const MAX_FILENAME_LENGTH = 255;
const OCTET_STREAM = 'application/octet-stream';
// Deleted per sweep step, so a large backlog never holds the event loop long.
const SWEEP_BATCH = 100;

const services = new WeakMap<ServerContext, UploadService>();

/** The running upload service of a server, if uploads are enabled. */
export function uploadServiceOf(server: ServerContext): UploadService | undefined {
  return services.get(server);
}

export class UploadService {
  readonly files: UploadFileStore;
  readonly domain: string;
  private readonly log: Logger;
  private readonly config: ServerContext['config']['upload'];
  private baseUrl: string | null;
  /** Ids whose bytes are being written now: not sweepable, not writable again. */
  private readonly active = new Set<string>();
  private readonly perOwner = new KeyedMutex();
  private readonly expiredListeners: Array<(r: UploadRecord) => void> = [];
  private sweepTimer: NodeJS.Timeout | null = null;
  private sweeping: Promise<number> | null = null;

  private constructor(
    server: ServerContext,
    private readonly tokens: PutTokens,
  ) {
    this.config = server.config.upload;
    this.domain = this.config.domain;
    this.log = server.log.child(this.domain);
    this.files = new UploadFileStore(server.storage, this.config.path);
    this.baseUrl = this.config.url || null;
  }

  static async start(server: ServerContext): Promise<UploadService> {
    const service = new UploadService(server, await PutTokens.load(server.storage));
    services.set(server, service);
    service.startSweeping();
    return service;
  }

  async stop(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    await this.sweeping;
  }

  /** The https listener tells its port; URLs point there unless upload.url says otherwise. */
  setHttpsPort(port: number | null): void {
    if (this.config.url) return;
    this.baseUrl = port === null ? null : `https://${this.domain}${port === 443 ? '' : `:${port}`}/upload`;
  }

  /** The origin files are served from (for the web client's CSP), or null. */
  get origin(): string | null {
    return this.baseUrl === null ? null : new URL(this.baseUrl).origin;
  }

  /** Whether files can be handed out (there is a URL to reach them). */
  get available(): boolean {
    return this.baseUrl !== null;
  }

  get maxFileSize(): number {
    return this.config.maxFileSize;
  }

  // --- slots (XEP-0363 §4) -------------------------------------------------

  /** Reserves a slot for `owner`; refuses with UploadError('too-large' | 'quota' | 'bad-request' | 'unavailable'). */
  async requestSlot(owner: string, filename: string, size: number, contentType: string | undefined): Promise<Slot> {
    checkFilename(filename);
    if (!Number.isSafeInteger(size) || size < 0) throw new UploadError('bad-request', 'the size must be a whole number of bytes');
    const type = contentType === undefined || contentType === '' ? '' : normaliseType(contentType);
    if (type === null) throw new UploadError('bad-request', `'${contentType}' is not a MIME type`);
    const base = this.requireBase();
    this.checkSize(size);
    return this.perOwner.run(owner, async () => {
      const now = Date.now();
      await this.checkQuota(owner, size, now, true);
      const record: UploadRecord = {
        id: newId(),
        owner,
        filename,
        size,
        contentType: type,
        created: now,
        state: 'pending',
        expires: now + this.config.slotLifetime * 1000,
      };
      await this.files.records.put(record);
      const getUrl = this.urlOf(base, record);
      const query = new URLSearchParams({ expires: String(record.expires), token: this.tokens.sign(tokenFields(record)) });
      this.log.debug('slot issued', { owner, id: record.id, size });
      return { record, getUrl, putUrl: `${getUrl}?${query}` };
    });
  }

  // --- PUT -----------------------------------------------------------------

  /** Checks a PUT against its slot and streams the body to disk; throws PutRefused. */
  async receive(put: PutRequest): Promise<UploadRecord> {
    const record = await this.files.records.get(put.id);
    // One answer for every URL that is not a live slot's: nothing to learn by probing.
    const forbidden = new PutRefused(403, 'this upload URL is not valid (tampered, expired or already used)');
    if (record?.state !== 'pending' || record.filename !== put.filename) throw forbidden;
    if (put.expires === null || put.token === null || put.expires !== String(record.expires)) throw forbidden;
    if (!this.tokens.verify(tokenFields(record), put.token)) throw forbidden;
    if (record.expires !== null && record.expires <= Date.now()) throw forbidden;
    if (this.active.has(record.id)) throw forbidden;
    if (put.contentLength === null) throw new PutRefused(411, 'Content-Length is required');
    if (put.contentLength > record.size) {
      throw new PutRefused(413, `the slot is for ${record.size} bytes, the request has ${put.contentLength}`);
    }
    if (put.contentLength !== record.size) {
      throw new PutRefused(400, `the slot is for ${record.size} bytes, the request has ${put.contentLength}`);
    }
    let type = record.contentType;
    const sent = put.contentType ? normaliseType(put.contentType) : null;
    if (type && sent && sent !== type) {
      throw new PutRefused(400, `the slot is for ${type}, the request says ${sent}`);
    }
    type ||= sent ?? OCTET_STREAM;
    this.active.add(record.id);
    try {
      put.accepted();
      await this.files.write(record.id, put.body, record.size, record.size);
      const stored = this.storedRecord(record, type, Date.now());
      await this.files.records.put(stored);
      this.log.info('file uploaded', { owner: record.owner, id: record.id, size: record.size });
      return stored;
    } catch (err) {
      if (err instanceof BlobIncompleteError) throw new PutRefused(400, err.message);
      if ((err as NodeJS.ErrnoException).code === 'ENOSPC') throw new PutRefused(507, 'the server is out of space');
      throw err;
    } finally {
      this.active.delete(record.id);
    }
  }

  // --- GET -----------------------------------------------------------------

  /** The stored file with this id and name, or null (unknown, still pending, expired or gone). */
  async find(id: string, filename: string): Promise<UploadRecord | null> {
    const record = await this.files.records.get(id);
    if (record?.state !== 'stored' || record.filename !== filename) return null;
    if (record.expires !== null && record.expires <= Date.now()) return null;
    return record;
  }

  // --- the in-process API --------------------------------------------------

  /**
   * Stores a file another feature received for a local user and returns
   * its public URL, e.g. to send as an XEP-0066 OOB link. The same limits as
   * uploads apply (upload.maxFileSize, the owner's quota); refused with an
   * UploadError. The bytes are streamed to disk, never held whole.
   */
  async storeFile(o: StoreFileOptions): Promise<StoredFile> {
    checkFilename(o.filename);
    const base = this.requireBase();
    const type = (o.contentType && normaliseType(o.contentType)) || OCTET_STREAM;
    if (o.size !== undefined) this.checkSize(o.size);
    const now = Date.now();
    const record = await this.perOwner.run(o.owner, async () => {
      await this.checkQuota(o.owner, o.size ?? 0, now, false);
      const r: UploadRecord = {
        id: newId(),
        owner: o.owner,
        filename: o.filename,
        size: o.size ?? 0,
        contentType: type,
        created: now,
        state: 'pending',
        expires: now + this.config.slotLifetime * 1000,
      };
      await this.files.records.put(r);
      return r;
    });
    this.active.add(record.id);
    try {
      const size = await this.files.write(record.id, o.source, o.size ?? this.config.maxFileSize, o.size);
      const stored = await this.perOwner.run(o.owner, async () => {
        // Checked again with the real size when it was not known up front.
        if (o.size === undefined) await this.checkQuota(o.owner, size, Date.now(), false, record.id);
        const s = this.storedRecord({ ...record, size }, type, Date.now());
        await this.files.records.put(s);
        return s;
      });
      this.log.info('file stored', { owner: o.owner, id: stored.id, size });
      return {
        id: stored.id,
        url: this.urlOf(base, stored),
        filename: stored.filename,
        size,
        contentType: type,
        expires: stored.expires,
      };
    } catch (err) {
      await this.files.remove(record);
      if (err instanceof BlobTooLargeError) {
        throw new UploadError('too-large', `the file is larger than ${this.config.maxFileSize} bytes`, {
          maxFileSize: this.config.maxFileSize,
        });
      }
      if (err instanceof BlobIncompleteError) throw new UploadError('incomplete', err.message);
      throw err;
    } finally {
      this.active.delete(record.id);
    }
  }

  /**
   * A stored file behind a URL this service handed out (an upload's GET URL
   * or a `storeFile` URL), with a way to stream its bytes; null for any
   * other URL, or a file gone or expired. For features that pass a shared
   * file on (e.g. to an MSN contact as a file transfer).
   */
  async fileForUrl(url: string): Promise<(StoredFile & { read(): Readable }) | null> {
    if (this.baseUrl === null || !url.startsWith(`${this.baseUrl}/`)) return null;
    const m = /^([A-Za-z0-9_-]{24})\/([^/?#]+)$/.exec(url.slice(this.baseUrl.length + 1));
    if (!m) return null;
    let filename: string;
    try {
      filename = decodeURIComponent(m[2]!);
    } catch {
      return null;
    }
    const r = await this.find(m[1]!, filename);
    if (!r || (await this.files.size(r.id)) === null) return null;
    return {
      id: r.id,
      url,
      filename: r.filename,
      size: r.size,
      contentType: r.contentType,
      expires: r.expires,
      read: () => this.files.read(r.id),
    };
  }

  // --- expiry ----------------------------------------------------------------

  /** Called with each file or slot the sweeper removes (tests wait on it; logs). */
  onExpired(fn: (r: UploadRecord) => void): void {
    this.expiredListeners.push(fn);
  }

  /** Removes every file and slot whose time is up; returns how many. */
  sweep(now = Date.now()): Promise<number> {
    this.sweeping ??= this.sweepOnce(now).finally(() => {
      this.sweeping = null;
    });
    return this.sweeping;
  }

  private async sweepOnce(now: number): Promise<number> {
    let removed = 0;
    for (;;) {
      const due = (await this.files.records.expiring(now, SWEEP_BATCH)).filter((r) => !this.active.has(r.id));
      if (due.length === 0) return removed;
      for (const r of due) {
        // A write may have started since the batch was read: it keeps its record.
        if (this.active.has(r.id)) continue;
        await this.files.remove(r);
        removed++;
        this.log.debug(r.state === 'stored' ? 'file expired' : 'slot expired', { owner: r.owner, id: r.id });
        for (const fn of this.expiredListeners) fn(r);
      }
    }
  }

  private startSweeping(): void {
    // Often enough that a file outlives its time by at most a tenth of it
    // (hourly for the default week); slots left unused go with the same pass.
    const every = Math.min(3600, Math.max(1, this.config.expireAfter / 10 || 3600));
    const run = () => {
      this.sweep().catch((err) => this.log.error('expiry sweep failed', { error: String(err) }));
    };
    this.sweepTimer = setInterval(run, every * 1000);
    this.sweepTimer.unref();
    run();
  }

  // --- helpers ---------------------------------------------------------------

  private requireBase(): string {
    if (this.baseUrl === null) throw new UploadError('unavailable', 'file upload needs the https listener or upload.url');
    return this.baseUrl;
  }

  private checkSize(size: number): void {
    if (size > this.config.maxFileSize) {
      throw new UploadError('too-large', `the file is larger than ${this.config.maxFileSize} bytes`, {
        maxFileSize: this.config.maxFileSize,
      });
    }
  }

  /**
   * Refuses when `size` more bytes would put `owner` over quota (stored files
   * plus open slots), or, for slots, over the open-slot limit. retryAt is
   * when enough of what the owner holds expires to make room.
   */
  private async checkQuota(owner: string, size: number, now: number, slot: boolean, except?: string): Promise<void> {
    const held = (await this.files.records.byOwner(owner)).filter(
      (r) => r.id !== except && (r.state === 'stored' || (r.expires ?? Infinity) > now),
    );
    const used = held.reduce((sum, r) => sum + r.size, 0);
    const pending = held.filter((r) => r.state === 'pending');
    const quota = this.config.quotaPerUser;
    if (used + size > quota) {
      throw new UploadError('quota', `over your upload quota of ${quota} bytes (${used} in use)`, {
        retryAt: whenFreed(held, used + size - quota),
      });
    }
    if (slot && pending.length >= this.config.pendingSlotsPerUser) {
      throw new UploadError('quota', `too many upload slots open (${pending.length})`, {
        retryAt: Math.min(...pending.map((r) => r.expires ?? Infinity)),
      });
    }
  }

  private storedRecord(record: UploadRecord, contentType: string, now: number): UploadRecord {
    const lifetime = this.config.expireAfter;
    return { ...record, contentType, state: 'stored', expires: lifetime > 0 ? now + lifetime * 1000 : null };
  }

  private urlOf(base: string, r: UploadRecord): string {
    return `${base}/${r.id}/${encodeURIComponent(r.filename)}`;
  }
}

function tokenFields(r: UploadRecord) {
  return { id: r.id, filename: r.filename, size: r.size, contentType: r.contentType, expires: r.expires ?? 0 };
}

/** 144 random bits, URL-safe. */
function newId(): string {
  return randomBytes(18).toString('base64url');
}

function checkFilename(name: string): void {
  if (name === '' || name.length > MAX_FILENAME_LENGTH) {
    throw new UploadError('bad-request', `the filename must have 1 to ${MAX_FILENAME_LENGTH} characters`);
  }
  if (/[\u0000-\u001f\u007f]/.test(name)) throw new UploadError('bad-request', 'the filename has control characters');
}

/** `type/subtype` in lower case with its parameters, or null when it is not a MIME type. */
export function normaliseType(value: string): string | null {
  try {
    return formatContentType(parseContentType(value));
  } catch {
    return null;
  }
}

/** The earliest time at which files expiring free at least `bytes`; undefined if they never do. */
function whenFreed(held: UploadRecord[], bytes: number): number | undefined {
  let freed = 0;
  for (const r of [...held].filter((h) => h.expires !== null).sort((a, b) => a.expires! - b.expires!)) {
    freed += r.size;
    if (freed >= bytes) return r.expires!;
  }
  return undefined;
}
