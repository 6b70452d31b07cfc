// Which web pages may open a WebSocket to us. Browsers send the page's
// Origin with the handshake; without a check, any site a user visits could
// talk XMPP to this server from the user's browser (and network position).
// Our own pages (the built-in web client on our HTTP/HTTPS ports, under the
// domain, localhost or a listen address) are always allowed, plus the
// configured `http.allowedOrigins` ("*" allows every origin). Clients that
// send no Origin are not browsers and have nothing to be protected from.

export interface OwnPorts {
  http: number | null;
  https: number | null;
}

export class OriginPolicy {
  private readonly allowed = new Set<string>();
  private readonly anyOrigin: boolean;

  constructor(domain: string, listen: string[], ports: OwnPorts, extra: string[]) {
    this.anyOrigin = extra.includes('*');
    const hosts = [
      domain,
      'localhost',
      '127.0.0.1',
      '[::1]',
      ...listen.map((a) => (a.includes(':') ? `[${a}]` : a)),
    ];
    for (const host of hosts) {
      if (ports.http !== null) this.add(`http://${host}:${ports.http}`);
      if (ports.https !== null) this.add(`https://${host}:${ports.https}`);
    }
    for (const origin of extra) if (origin !== '*') this.add(origin);
  }

  private add(origin: string): void {
    const normalised = normalise(origin);
    if (normalised) this.allowed.add(normalised);
  }

  allows(origin: string | undefined): boolean {
    if (origin === undefined) return true;
    if (this.anyOrigin) return true;
    const normalised = normalise(origin);
    return normalised !== null && this.allowed.has(normalised);
  }
}

/** scheme://host[:port] in URL's canonical form (default port dropped), or null ("null" origins included). */
function normalise(origin: string): string | null {
  try {
    const url = new URL(origin);
    return url.origin === 'null' ? null : url.origin;
  } catch {
    return null;
  }
}
