// TLS certificates: every <name>.crt/<name>.key pair in tls.dir is loaded
// and chosen by SNI; the pair for the main domain is generated on first
// start (self-signed, with the transport domain as a second name) by the
// system `openssl`, so a fresh install has working TLS with no extra package.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Logger } from '../log.ts';

export interface CertPair {
  cert: string;
  key: string;
}

export class Certificates {
  private contexts = new Map<string, SecureContext>();
  pairs = new Map<string, CertPair>();
  private readonly reloadHandlers: Array<() => void> = [];

  private constructor(
    readonly dir: string,
    private readonly defaultName: string,
    private readonly log: Logger,
  ) {}

  static load(dir: string, domain: string, altNames: string[], log: Logger): Certificates {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const crt = join(dir, `${domain}.crt`);
    const key = join(dir, `${domain}.key`);
    if (!existsSync(crt) || !existsSync(key)) {
      generateSelfSigned(crt, key, [domain, ...altNames]);
      log.info('generated a self-signed certificate', { file: crt, names: [domain, ...altNames].join(',') });
    } else {
      coverNewNames(dir, crt, altNames, log);
    }
    const certs = new Certificates(dir, domain, log);
    certs.read();
    return certs;
  }

  /** Reads every pair in the folder; the current set stays if the main one is unusable. */
  private read(): void {
    const contexts = new Map<string, SecureContext>();
    const pairs = new Map<string, CertPair>();
    for (const file of readdirSync(this.dir)) {
      if (!file.endsWith('.crt')) continue;
      const name = file.slice(0, -4);
      const keyFile = join(this.dir, `${name}.key`);
      if (!existsSync(keyFile)) continue;
      const pair = { cert: readFileSync(join(this.dir, file), 'utf8'), key: readFileSync(keyFile, 'utf8') };
      try {
        contexts.set(name, createSecureContext(pair));
        pairs.set(name, pair);
      } catch (err) {
        this.log.warn('ignoring unusable certificate', { file, error: (err as Error).message });
      }
    }
    if (!contexts.has(this.defaultName)) {
      throw new Error(`no usable certificate for ${this.defaultName} in ${this.dir}`);
    }
    this.contexts = contexts;
    this.pairs = pairs;
  }

  /**
   * Picks up certificates dropped into the folder (SIGHUP, as Prosody's
   * reload): new connections use them, existing ones keep theirs.
   */
  reload(): boolean {
    try {
      this.read();
    } catch (err) {
      this.log.error('certificate reload failed; keeping the current ones', {
        error: (err as Error).message,
      });
      return false;
    }
    for (const fn of this.reloadHandlers) fn();
    this.log.info('certificates reloaded', { names: [...this.pairs.keys()].join(',') });
    return true;
  }

  /** Listeners created with serverOptions() register here to follow reloads. */
  onReload(fn: () => void): void {
    this.reloadHandlers.push(fn);
  }

  /** The context for a server name, falling back to the main domain's. */
  context(servername?: string): SecureContext {
    if (servername) {
      const exact = this.contexts.get(servername);
      if (exact) return exact;
      const parent = servername.split('.').slice(1).join('.');
      const wildcard = this.contexts.get(`*.${parent}`) ?? this.contexts.get(parent);
      if (wildcard) return wildcard;
    }
    return this.contexts.get(this.defaultName)!;
  }

  /** Options for tls.createServer / https.createServer with SNI. */
  serverOptions(): {
    SNICallback: (name: string, cb: (e: Error | null, c?: SecureContext) => void) => void;
  } & CertPair {
    const main = this.pairs.get(this.defaultName)!;
    return {
      ...main,
      SNICallback: (name, cb) => cb(null, this.context(name)),
    };
  }
}

/** What an operator wants to know about a certificate file (`check`, the start banner). */
export interface CertInfo {
  /** DNS names it is valid for (subjectAltName, else the CN). */
  names: string[];
  notAfter: Date;
  selfSigned: boolean;
  issuer: string;
}

/** Reads the first certificate of a PEM chain. */
export function certInfo(pem: string): CertInfo {
  const x = new X509Certificate(pem);
  const san = (x.subjectAltName ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4).toLowerCase());
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(x.subject)?.[1];
  return {
    names: san.length ? san : cn ? [cn.toLowerCase()] : [],
    notAfter: new Date(x.validTo),
    selfSigned: x.issuer === x.subject && x.checkIssued(x),
    issuer: x.issuer.replace(/\n/g, ', '),
  };
}

/** Whether a certificate name (possibly "*.example.org") covers a host name. */
export function nameCovers(pattern: string, host: string): boolean {
  if (pattern === host) return true;
  if (!pattern.startsWith('*.')) return false;
  const dot = host.indexOf('.');
  return dot > 0 && host.slice(dot + 1) === pattern.slice(2);
}

/**
 * A name served since the main certificate was made (a service enabled
 * later, e.g. conference.<domain>) gets a self-signed pair of its own when
 * neither the main certificate nor a NAME.crt already covers it: the
 * operator's files are never rewritten.
 */
function coverNewNames(dir: string, mainCrt: string, names: string[], log: Logger): void {
  let main: X509Certificate;
  try {
    main = new X509Certificate(readFileSync(mainCrt));
  } catch {
    return; // read() reports an unusable main certificate
  }
  for (const name of names) {
    const own = join(dir, `${name}.crt`);
    if (main.checkHost(name) !== undefined || existsSync(own)) continue;
    generateSelfSigned(own, join(dir, `${name}.key`), [name]);
    log.info('generated a self-signed certificate for a name the main one lacks', { file: own, name });
  }
}

/** Writes a self-signed EC P-256 certificate for `names` (the first is the CN). */
export function generateSelfSigned(crtFile: string, keyFile: string, names: string[], days = 3650): void {
  const san = names.map((n) => `DNS:${n}`).join(',');
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        String(days),
        '-subj',
        `/CN=${names[0]}`,
        '-addext',
        `subjectAltName=${san}`,
        '-keyout',
        keyFile,
        '-out',
        crtFile,
      ],
      { stdio: 'pipe' },
    );
  } catch (err) {
    const e = err as { code?: string; stderr?: Buffer };
    if (e.code === 'ENOENT') {
      throw new Error(
        'openssl is not installed: install it, or put <domain>.crt and <domain>.key in tls.dir',
      );
    }
    throw new Error(
      `openssl failed to generate a certificate: ${e.stderr?.toString().trim() ?? String(err)}`,
    );
  }
}
