// Answers to ACME challenges while an order is open: HTTP-01 tokens for
// /.well-known/acme-challenge/ on the http service, and TLS-ALPN-01
// certificates for handshakes that ask for the "acme-tls/1" protocol on the
// https service (RFC 8737). Filled and emptied by the ACME service.
import { createSecureContext, type SecureContext } from 'node:tls';

export const ACME_CHALLENGE_PATH = '/.well-known/acme-challenge/';
export const ACME_TLS_ALPN = 'acme-tls/1';

export class AcmeChallenges {
  private readonly http = new Map<string, string>();
  private readonly tls = new Map<string, SecureContext>();

  setHttp(token: string, keyAuthorization: string): void {
    this.http.set(token, keyAuthorization);
  }

  deleteHttp(token: string): void {
    this.http.delete(token);
  }

  /** The key authorization for an HTTP-01 token, or undefined. */
  httpAnswer(token: string): string | undefined {
    return this.http.get(token);
  }

  setTls(name: string, cert: string, key: string): void {
    this.tls.set(name.toLowerCase(), createSecureContext({ cert, key }));
  }

  deleteTls(name: string): void {
    this.tls.delete(name.toLowerCase());
  }

  /** The TLS-ALPN-01 context for a server name, or undefined. */
  tlsContext(name: string | undefined): SecureContext | undefined {
    return name ? this.tls.get(name.toLowerCase()) : undefined;
  }

  /** Whether any TLS-ALPN-01 challenge is open (the https listener only looks then). */
  get tlsPending(): boolean {
    return this.tls.size > 0;
  }
}
