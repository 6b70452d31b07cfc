// TLS for server-to-server streams: one secure context per local domain
// that both presents our certificate (as TLS server, and as TLS client so
// peers can use SASL EXTERNAL on us) and verifies the peer's against the
// system CAs plus `s2s.trustedCas`. Whether a peer "verified" is judged
// here once: chain valid AND the certificate names the claimed domain.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  checkServerIdentity,
  createSecureContext,
  type DetailedPeerCertificate,
  rootCertificates,
  type SecureContext,
} from 'node:tls';
import type { TcpFraming } from '../stream/tcp-framing.ts';
import type { Certificates } from '../tls/certs.ts';

export class S2STls {
  private readonly ca: string[];
  private anchors: X509Certificate[] | null = null;
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
    // Reloaded certificates apply to the next link.
    certs.onReload(() => this.contexts.clear());
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
    if (!framing.secure) return false;
    const cert = framing.peerCertificate() as DetailedPeerCertificate | null;
    if (!cert) return false;
    // Node sets `authorized` for TLS clients, and for servers only when the
    // socket came from tls.Server: a STARTTLS server socket never gets it,
    // so the client certificate's chain is checked here instead.
    if (!framing.peerAuthorized() && !this.chainTrusted(cert)) return false;
    return checkServerIdentity(domain, cert) === undefined;
  }

  /**
   * Walks leaf → presented intermediates → one of our CAs, checking each
   * signature and validity period (what OpenSSL does for the client side).
   */
  private chainTrusted(peer: DetailedPeerCertificate): boolean {
    this.anchors ??= this.ca.flatMap(parsePems);
    const presented: X509Certificate[] = [];
    const seen = new Set<DetailedPeerCertificate>();
    for (let c: DetailedPeerCertificate | undefined = peer; c?.raw && !seen.has(c); c = c.issuerCertificate) {
      seen.add(c);
      presented.push(new X509Certificate(c.raw));
    }
    const now = Date.now();
    const current = (x: X509Certificate) => Date.parse(x.validFrom) <= now && now <= Date.parse(x.validTo);
    const signs = (issuer: X509Certificate, x: X509Certificate) =>
      current(issuer) && x.checkIssued(issuer) && x.verify(issuer.publicKey);
    let cert: X509Certificate | undefined = presented[0];
    for (let depth = 0; cert && depth < 10; depth++) {
      if (!current(cert)) return false;
      const c: X509Certificate = cert;
      if (this.anchors.some((anchor) => signs(anchor, c))) return true;
      cert = presented.find((p) => p !== c && p.ca && signs(p, c));
    }
    return false;
  }
}

/** Every certificate in a PEM bundle (unparseable entries are skipped). */
function parsePems(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.flatMap((b) => {
    try {
      return [new X509Certificate(b)];
    } catch {
      return [];
    }
  });
}
