// HTTP(S) requests from tests with node:http(s): names under .localhost
// (upload.localhost) resolve to 127.0.0.1 as browsers do (RFC 6761), the
// server name is still sent for SNI, and bodies can be streamed.
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import type { Readable } from 'node:stream';

export interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string | number>;
  /** A whole body, or a stream of one. */
  body?: Buffer | string | Readable;
  /** Called when the interim 100 Continue arrives. */
  onContinue?: () => void;
}

/** Resolves every name ending in .localhost (and localhost) to 127.0.0.1. */
export const loopbackLookup: LookupFunction = (hostname, options, callback) => {
  if (hostname !== 'localhost' && !hostname.endsWith('.localhost')) {
    (callback as (e: Error) => void)(new Error(`tests resolve only *.localhost, not ${hostname}`));
    return;
  }
  if ((options as { all?: boolean }).all) (callback as (e: null, a: object[]) => void)(null, [{ address: '127.0.0.1', family: 4 }]);
  else callback(null, '127.0.0.1', 4);
};

/** Sends a request and reads the whole response. */
export function fetchUrl(url: string, o: RequestOptions = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = openRequest(url, o, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/** Starts a request; the caller gets the response as it arrives (streamed bodies, early answers). */
export function openRequest(url: string, o: RequestOptions, onResponse: (res: IncomingMessage) => void) {
  const u = new URL(url);
  const make = u.protocol === 'https:' ? httpsRequest : httpRequest;
  const req = make(
    u,
    {
      method: o.method ?? 'GET',
      headers: o.headers,
      lookup: loopbackLookup,
      // The test servers' certificates are self-signed.
      rejectUnauthorized: false,
      servername: u.hostname,
      agent: false,
    },
    onResponse,
  );
  if (o.onContinue) req.on('continue', o.onContinue);
  const body = o.body;
  if (body === undefined) req.end();
  else if (typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
  else if (o.headers?.Expect === '100-continue') req.on('continue', () => body.pipe(req));
  else body.pipe(req);
  return req;
}
