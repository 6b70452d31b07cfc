// HTTP side of XEP-0363 on the https (and http) listeners, under /upload/:
//   PUT  /upload/<id>/<name>?expires=..&token=..   a slot's bytes (201)
//   GET  /upload/<id>/<name>                        the file (Range, HEAD)
//   OPTIONS                                         CORS preflight (web clients PUT cross-origin)
// A PUT is checked (signature, single use, deadline, Content-Length against
// the slot) before a byte of its body is read — with `Expect: 100-continue`
// the client is refused before it sends any — and the body is streamed to
// disk. Files are served with the type they were uploaded with, inline only
// for raster images, never sniffed, under a CSP that lets nothing run.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { create as contentDisposition } from 'content-disposition';
import parseRange from 'range-parser';
import type { Logger } from '../log.ts';
import type { UploadRecord } from '../storage/types.ts';
import { PutRefused, type UploadService } from '../upload/upload-service.ts';

export const UPLOAD_PREFIX = '/upload/';

// Served files may not run or embed anything, nor be framed.
const FILE_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox";
// Shown inline (chat clients preview them); everything else is a download.
// Not SVG: it is a document that can carry script.
const INLINE_TYPES = new Set([
  'image/png',
  'image/jpeg',
  'image/gif',
  'image/webp',
  'image/avif',
  'image/bmp',
  'image/heic',
  'image/heif',
]);
// An early refusal leaves the client's body unread; it is read and dropped
// for this long so the response is not lost to a TCP reset, then the
// connection is cut.
const LINGER_MS = 2000;

export class UploadRoutes {
  constructor(
    private readonly uploads: UploadService,
    private readonly log: Logger,
  ) {}

  /** Whether this request is an upload PUT (which answers `Expect: 100-continue` itself). */
  static isPut(req: IncomingMessage): boolean {
    return req.method === 'PUT' && (req.url ?? '').startsWith(UPLOAD_PREFIX);
  }

  /** Answers a request whose path starts with /upload/. */
  async handle(req: IncomingMessage, res: ServerResponse, path: string, query: string): Promise<void> {
    // Web clients upload and fetch from another origin (upload.<domain>).
    res.setHeader('Access-Control-Allow-Origin', '*');
    const parts = parsePath(path);
    switch (req.method) {
      case 'OPTIONS':
        res.writeHead(204, {
          'Access-Control-Allow-Methods': 'GET, HEAD, PUT',
          'Access-Control-Allow-Headers': 'Content-Type',
          'Access-Control-Max-Age': '86400',
        });
        res.end();
        return;
      case 'PUT':
        return this.put(req, res, parts, query);
      case 'GET':
      case 'HEAD':
        return this.get(req, res, parts);
      default:
        res.setHeader('Allow', 'GET, HEAD, PUT, OPTIONS');
        return reply(res, 405, 'method not allowed');
    }
  }

  private async put(
    req: IncomingMessage,
    res: ServerResponse,
    parts: { id: string; filename: string } | null,
    query: string,
  ): Promise<void> {
    const params = new URLSearchParams(query);
    const length = req.headers['content-length'];
    let body = false;
    try {
      if (!parts) throw new PutRefused(403, 'this upload URL is not valid (tampered, expired or already used)');
      await this.uploads.receive({
        ...parts,
        expires: params.get('expires'),
        token: params.get('token'),
        contentLength: length !== undefined && /^\d+$/.test(length) ? Number(length) : null,
        contentType: req.headers['content-type'] ?? null,
        body: req,
        accepted: () => {
          body = true;
          if (/^100-continue$/i.test(String(req.headers.expect ?? ''))) res.writeContinue();
        },
      });
      reply(res, 201, 'created');
    } catch (err) {
      if (res.headersSent || req.destroyed) return;
      if (!(err instanceof PutRefused)) {
        if (!body) throw err;
        // The client went away or the disk failed mid-body; the partial file is gone already.
        this.log.warn('upload failed', { id: parts?.id, error: String(err) });
        res.destroy();
        return;
      }
      this.log.debug('upload refused', { id: parts?.id, status: err.status, reason: err.message, ip: req.socket.remoteAddress });
      if (!body) refuseUnread(req, res);
      reply(res, err.status, err.message);
    }
  }

  private async get(req: IncomingMessage, res: ServerResponse, parts: { id: string; filename: string } | null): Promise<void> {
    const record = parts && (await this.uploads.find(parts.id, parts.filename));
    const size = record && (await this.uploads.files.size(record.id));
    if (!record || size === null) return reply(res, 404, 'not found');
    const etag = `"${record.id}"`;
    res.setHeader('Content-Security-Policy', FILE_CSP);
    res.setHeader('Content-Type', record.contentType);
    res.setHeader('Content-Disposition', disposition(record));
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('ETag', etag);
    res.setHeader('Last-Modified', new Date(record.created).toUTCString());
    res.setHeader('Cache-Control', 'public, max-age=3600');
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304).end();
      return;
    }
    const range = pickRange(req, size, etag);
    if (range === 'unsatisfiable') {
      res.setHeader('Content-Range', `bytes */${size}`);
      return reply(res, 416, 'range not satisfiable', true);
    }
    if (range) {
      res.setHeader('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
      res.setHeader('Content-Length', range.end - range.start + 1);
      res.writeHead(206);
    } else {
      res.setHeader('Content-Length', size);
      res.writeHead(200);
    }
    if (req.method === 'HEAD' || size === 0) {
      res.end();
      return;
    }
    // A client that goes away mid-download is not worth more than closing.
    await pipeline(this.uploads.files.read(record.id, range ?? undefined), res).catch(() => res.destroy());
  }
}

/** `/upload/<id>/<name>` → its parts (the name decoded), or null. */
function parsePath(path: string): { id: string; filename: string } | null {
  const m = /^\/upload\/([A-Za-z0-9_-]{24})\/([^/]+)$/.exec(path);
  if (!m) return null;
  try {
    return { id: m[1]!, filename: decodeURIComponent(m[2]!) };
  } catch {
    return null;
  }
}

/** One byte range from the Range header, null for the whole file. */
function pickRange(req: IncomingMessage, size: number, etag: string): { start: number; end: number } | 'unsatisfiable' | null {
  const header = req.headers.range;
  if (!header) return null;
  // If-Range with another validator: the client's copy is stale, send it all.
  const ifRange = req.headers['if-range'];
  if (ifRange !== undefined && ifRange !== etag) return null;
  const ranges = parseRange(size, header, { combine: true });
  if (ranges === -1) return 'unsatisfiable';
  // Malformed, another unit, or several ranges (multipart/byteranges is not
  // worth it for chat files): the whole file, as RFC 9110 allows.
  if (ranges === -2 || ranges.type !== 'bytes' || ranges.length !== 1) return null;
  return { start: ranges[0]!.start, end: ranges[0]!.end };
}

function disposition(r: UploadRecord): string {
  const type = r.contentType.split(';')[0]!.trim();
  return contentDisposition(r.filename, { type: INLINE_TYPES.has(type) ? 'inline' : 'attachment' });
}

/**
 * A refusal before the body was read: the connection closes after the
 * answer. What the client still sends is read and dropped for a moment (so
 * the answer is not lost to a reset), never stored.
 */
function refuseUnread(req: IncomingMessage, res: ServerResponse): void {
  res.setHeader('Connection', 'close');
  res.once('finish', () => {
    req.resume();
    const cut = setTimeout(() => req.socket.destroy(), LINGER_MS);
    cut.unref();
    req.socket.once('close', () => clearTimeout(cut));
  });
}

function reply(res: ServerResponse, status: number, text: string, keepHeaders = false): void {
  const body = `${text}\n`;
  if (!keepHeaders) {
    for (const h of ['Content-Disposition', 'Content-Security-Policy', 'ETag', 'Accept-Ranges']) res.removeHeader(h);
  }
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
