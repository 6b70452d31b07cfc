// Client listeners: c2s.port (plain TCP with STARTTLS) and c2s.directTlsPort
// (XEP-0368 direct TLS). Counts connections per address from the TCP
// accept, so TLS handshakes that never finish count against the limit too,
// and drops handshakes that take longer than limits.tlsHandshakeTimeout.
import { createServer as createTcpServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import type { Server } from '../server.ts';
import { TcpFraming } from '../stream/tcp-framing.ts';
import { C2SSession } from './c2s-session.ts';
import { ConnectionsPerAddress } from '../util/address-limit.ts';
import { closeAll, listenAll } from '../util/listen.ts';

export class C2SListeners {
  private readonly servers: NetServer[] = [];
  readonly sessions = new Set<C2SSession>();
  private readonly perAddress = new ConnectionsPerAddress(() => this.server.config.limits.maxConnectionsPerIp);
  ports: { starttls: number | null; directTls: number | null } = { starttls: null, directTls: null };

  private keepaliveTimer: NodeJS.Timeout | null = null;

  constructor(private readonly server: Server) {}

  async start(): Promise<void> {
    const { c2s } = this.server.config;
    // One sweep for all sessions instead of a timer per connection.
    const interval = this.server.config.limits.keepaliveInterval * 1000;
    this.keepaliveTimer = setInterval(() => {
      const before = Date.now() - interval;
      for (const s of this.sessions) s.keepaliveIfIdle(before);
    }, interval / 2);
    this.keepaliveTimer.unref();
    if (c2s.port !== false) {
      const make = () => createTcpServer((socket) => this.accept(socket, this.perAddress.admit(socket)));
      const bound = await listenAll(make, c2s.port, this.server.config.listen);
      this.ports.starttls = bound.port;
      this.servers.push(...bound.servers);
    }
    if (c2s.directTlsPort !== false) {
      const make = () => {
        const s = createTlsServer(
          {
            ...this.server.certs.serverOptions(),
            ALPNProtocols: ['xmpp-client'],
            handshakeTimeout: this.server.config.limits.tlsHandshakeTimeout * 1000,
          },
          (socket) => this.accept(socket, true),
        );
        // Counted before the handshake; over the limit, not even that is done.
        s.on('connection', (raw: Socket) => {
          if (!this.perAddress.admit(raw)) raw.destroy();
        });
        // A failed or timed-out handshake: Node reports it here but leaves the
        // connection open (measured), so it is closed here.
        s.on('tlsClientError', (_err: Error, socket: Socket) => socket.destroy());
        this.server.certs.onReload(() => s.setSecureContext(this.server.certs.serverOptions()));
        return s;
      };
      const bound = await listenAll(make, c2s.directTlsPort, this.server.config.listen);
      this.ports.directTls = bound.port;
      this.servers.push(...bound.servers);
    }
  }

  private accept(socket: Socket, withinLimit: boolean): void {
    socket.setKeepAlive(true, 60_000);
    const framing = new TcpFraming(socket, {
      limits: this.server.preAuthLimits,
      secureContext: this.server.certs.context(),
      handshakeTimeout: this.server.config.limits.tlsHandshakeTimeout * 1000,
    });
    const session = new C2SSession(this.server, framing, (s) => this.sessions.delete(s));
    this.sessions.add(session);
    if (!withinLimit) {
      session.close('policy-violation', 'too many connections from your address');
    }
  }

  async stop(): Promise<void> {
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    for (const s of [...this.sessions]) s.close('system-shutdown', 'the server is shutting down');
    await closeAll(this.servers);
  }
}
