// TLS for server-to-server streams: one secure context per local domain
// that both presents our certificate (as TLS server, and as TLS client so
// peers can use SASL EXTERNAL on us) and verifies the peer's against the
// system CAs plus `s2s.trustedCas`. Whether a peer "verified" is judged
// here once: chain valid AND the certificate names the claimed domain.
import { readFileSync } from 'node:fs';
import { checkServerIdentity, createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import type { TcpFraming } from '../stream/tcp-framing.ts';
import type { Certificates } from '../tls/certs.ts';

export class S2STls {
  private readonly ca: string[];
  private readonly contexts = new Map<string, SecureContext>();

  constructor(
    private readonly certs: Certificates,
    private readonly mainDomain: string,
    trustedCaFiles: string[],
  ) {
    const extra = trustedCaFiles.map((file) => {
      try {
        return readFileSync(file, 'utf8');
      } catch (err) {
        throw new Error(`s2s.trustedCas: cannot read ${file}: ${(err as Error).message}`);
      }
    });
    this.ca = [...rootCertificates, ...extra];
  }

  /** Context for streams of a local domain (its own pair if present, else the main one). */
  context(localDomain: string): SecureContext {
    let ctx = this.contexts.get(localDomain);
    if (!ctx) {
      const pair = this.certs.pairs.get(localDomain) ?? this.certs.pairs.get(this.mainDomain)!;
      ctx = createSecureContext({ cert: pair.cert, key: pair.key, ca: this.ca });
      this.contexts.set(localDomain, ctx);
    }
    return ctx;
  }

  /** Options for tls.createServer (direct TLS port) with the same trust. */
  serverOptions(localDomain: string): { cert: string; key: string; ca: string[] } {
    const pair = this.certs.pairs.get(localDomain) ?? this.certs.pairs.get(this.mainDomain)!;
    return { cert: pair.cert, key: pair.key, ca: this.ca };
  }

  /** Whether the peer's certificate chains to a trusted CA and names `domain`. */
  peerVerified(framing: TcpFraming, domain: string): boolean {
    if (!framing.secure || !framing.peerAuthorized()) return false;
    const cert = framing.peerCertificate();
    if (!cert) return false;
    return checkServerIdentity(domain, cert) === undefined;
  }
}
