/**
 * POSTing SOAP requests to the MSN web services (RST, address book,
 * sharing, offline messages), with a deadline and a cap on the reply size,
 * so a slow or hostile service can neither hang a login nor fill memory.
 */
import http from 'node:http';
import https from 'node:https';
import { MsnConnectionError, MsnProtocolError, MsnTimeoutError } from '../errors.ts';
import type { MsnTrace } from '../trace.ts';

/** Largest service reply read (an address book of a few thousand contacts fits). */
export const MAX_SOAP_REPLY = 8 * 1024 * 1024;

export interface SoapReply {
  status: number;
  body: string;
}

export interface SoapRequest {
  url: string;
  /** The SOAPAction header (without quotes). */
  action: string;
  body: string;
  timeout: number;
  trace?: MsnTrace;
  headers?: Record<string, string>;
}

export function postSoap(req: SoapRequest): Promise<SoapReply> {
  return new Promise((resolve, reject) => {
    let url: URL;
    try {
      url = new URL(req.url);
    } catch {
      reject(new MsnProtocolError(`bad service URL: ${req.url}`));
      return;
    }
    const mod = url.protocol === 'https:' ? https : url.protocol === 'http:' ? http : undefined;
    if (!mod) {
      reject(new MsnProtocolError(`unsupported service URL scheme: ${req.url}`));
      return;
    }
    const body = Buffer.from(req.body, 'utf8');
    req.trace?.({ direction: 'out', server: 'HTTP', line: `POST ${url.origin}${url.pathname} ${req.action}` });
    const r = mod.request(
      url,
      {
        method: 'POST',
        agent: false,
        headers: {
          'Content-Type': 'text/xml; charset=utf-8',
          'Content-Length': body.length,
          SOAPAction: `"${req.action}"`,
          'User-Agent': 'MSN Explorer/9.0 (MSN 8.0; TmstmpExt)',
          ...req.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_SOAP_REPLY) {
            res.destroy();
            reject(new MsnProtocolError(`${url.host} sent a reply larger than ${MAX_SOAP_REPLY} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => {
          req.trace?.({ direction: 'in', server: 'HTTP', line: `HTTP ${res.statusCode ?? 0} (${size} bytes)` });
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', (err) => reject(new MsnConnectionError(`${url.host}: ${err.message}`)));
      },
    );
    r.setTimeout(req.timeout, () => {
      r.destroy();
      reject(new MsnTimeoutError(`${req.action} at ${url.host}`));
    });
    r.on('error', (err) => reject(new MsnConnectionError(`request to ${url.host} failed: ${err.message}`)));
    r.end(body);
  });
}
