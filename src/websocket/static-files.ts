// Read-only files from one directory (the Converse.js dist folder). Paths
// are decoded once and refused if any segment could climb out (.., empty
// after decoding, backslashes, NUL) or names a hidden file; the resolved
// path must still lie under the root. Compressible types are gzipped on the
// fly (converse.min.js is >1 MB) and validators allow 304 revalidation.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.otf': 'font/otf',
  '.eot': 'application/vnd.ms-fontobject',
  '.wasm': 'application/wasm',
  '.mp3': 'audio/mpeg',
  '.ogg': 'audio/ogg',
  '.txt': 'text/plain; charset=utf-8',
};
const COMPRESSIBLE = new Set([
  '.html',
  '.js',
  '.mjs',
  '.css',
  '.json',
  '.map',
  '.svg',
  '.txt',
  '.ttf',
  '.otf',
  '.eot',
]);

export class StaticFiles {
  private readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  /** Serves `relPath` (still URL-encoded, relative to the root); false when there is no such file. */
  async serve(req: IncomingMessage, res: ServerResponse, relPath: string): Promise<boolean> {
    const file = this.resolvePath(relPath);
    if (!file) return false;
    const info = await stat(file).catch(() => null);
    if (!info?.isFile()) return false;
    const ext = extname(file).toLowerCase();
    const etag = `"${info.size.toString(36)}-${Math.floor(info.mtimeMs).toString(36)}"`;
    res.setHeader('Content-Type', TYPES[ext] ?? 'application/octet-stream');
    res.setHeader('Cache-Control', 'public, max-age=3600');
    res.setHeader('ETag', etag);
    res.setHeader('Last-Modified', info.mtime.toUTCString());
    res.setHeader('Vary', 'Accept-Encoding');
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304).end();
      return true;
    }
    const gzip = COMPRESSIBLE.has(ext) && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    if (gzip) res.setHeader('Content-Encoding', 'gzip');
    else res.setHeader('Content-Length', info.size);
    res.writeHead(200);
    if (req.method === 'HEAD') {
      res.end();
      return true;
    }
    const source = createReadStream(file);
    // A client that goes away mid-download is not an error worth more than closing.
    await (gzip ? pipeline(source, createGzip(), res) : pipeline(source, res)).catch(() => res.destroy());
    return true;
  }

  private resolvePath(relPath: string): string | null {
    let decoded: string;
    try {
      decoded = decodeURIComponent(relPath);
    } catch {
      return null;
    }
    if (decoded.includes('\0') || decoded.includes('\\')) return null;
    const segments = decoded.split('/');
    if (segments.some((s) => s === '' || s.startsWith('.'))) return null;
    const full = join(this.root, ...segments);
    return full.startsWith(this.root + sep) ? full : null;
  }
}
