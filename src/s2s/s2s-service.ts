// Federation: the s2s listeners (s2s.port with STARTTLS, s2s.directTlsPort
// for XEP-0368 direct TLS), the outgoing links the router sends remote
// stanzas through (`router.remote`), and the dialback verification round
// trips. Outgoing links are per (local domain, remote domain) pair, so the
// main domain and msn.<domain> each authenticate on their own stream.
//
// Disabled entirely when s2s.port is false: without a listener a peer
// cannot call back to check our dialback keys, so outgoing-only federation
// would fail for most peers anyway; the router then bounces remote stanzas
// with remote-server-not-found.
import { Resolver } from 'node:dns/promises';
import { createServer as createTcpServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import type { Logger } from '../log.ts';
import type { RemoteRoute } from '../router/router.ts';
import type { Server } from '../server.ts';
import type { Service } from '../services.ts';
import { detached } from '../stream/inbound-context.ts';
import { TcpFraming } from '../stream/tcp-framing.ts';
import { ConnectionsPerAddress } from '../util/address-limit.ts';
import { closeAll, listenAll } from '../util/listen.ts';
import { clone, type Element } from '../xml/element.ts';
import { DialbackKeys } from './dialback-keys.ts';
import { IncomingStream } from './incoming.ts';
import { OutgoingStream, type VerifyResult } from './outgoing.ts';
import type { SrvResolver } from './resolve.ts';
import { S2STls } from './s2s-tls.ts';

export class S2SService implements Service, RemoteRoute {
  readonly log: Logger;
  ports: { starttls: number | null; directTls: number | null } = { starttls: null, directTls: null };
  /** SRV lookups; replaceable (tests point it at a loopback DNS server). */
  dns: SrvResolver = new Resolver({ timeout: 5000, tries: 2 });
  keys!: DialbackKeys;
  tls!: S2STls;
  readonly incoming = new Set<IncomingStream>();
  /** Authenticated-or-coming-up links, keyed "local remote". */
  readonly links = new Map<string, OutgoingStream>();
  private readonly verifiers = new Map<string, OutgoingStream>();
  private readonly listeners: NetServer[] = [];
  /** Incoming connections per address, counted from the TCP accept (before TLS). */
  private readonly perAddress = new ConnectionsPerAddress(() => this.server.config.limits.maxS2SConnectionsPerIp);
  private stopped = false;

  constructor(readonly server: Server) {
    this.log = server.log.child('s2s');
  }

  get secureAuth(): boolean {
    return this.server.config.s2s.secureAuth;
  }

  isHosted(domain: string): boolean {
    return this.server.hosts.has(domain);
  }

  async start(): Promise<void> {
    const { config } = this.server;
    this.tls = new S2STls(this.server.certs, config.domain, config.s2s.trustedCas);
    this.keys = await DialbackKeys.load(this.server.storage);
    if (config.s2s.port !== false) {
      const bound = await listenAll(
        () => createTcpServer((s) => this.accept(s, this.perAddress.admit(s))),
        config.s2s.port,
        config.listen,
      );
      this.ports.starttls = bound.port;
      this.listeners.push(...bound.servers);
    }
    if (config.s2s.directTlsPort !== false) {
      const make = () => {
        const s = createTlsServer(
          {
            ...this.tls.serverOptions(config.domain),
            requestCert: true,
            rejectUnauthorized: false, // an unverified peer may still use dialback
            ALPNProtocols: ['xmpp-server'],
            handshakeTimeout: config.limits.tlsHandshakeTimeout * 1000,
          },
          (socket) => this.accept(socket, true),
        );
        s.on('connection', (raw: Socket) => {
          if (!this.perAddress.admit(raw)) raw.destroy();
        });
        // A failed or timed-out handshake: Node reports it here but leaves the
        // connection open (measured), so it is closed here.
        s.on('tlsClientError', (_err: Error, socket: Socket) => socket.destroy());
        this.server.certs.onReload(() => s.setSecureContext(this.tls.serverOptions(config.domain)));
        return s;
      };
      const bound = await listenAll(make, config.s2s.directTlsPort, config.listen);
      this.ports.directTls = bound.port;
      this.listeners.push(...bound.servers);
    }
    this.server.router.remote = this;
    this.log.info('federation enabled', {
      port: this.ports.starttls,
      directTlsPort: this.ports.directTls,
      secureAuth: config.s2s.secureAuth,
    });
  }

  private accept(socket: Socket, withinLimit: boolean): void {
    socket.setKeepAlive(true, 60_000);
    const framing = new TcpFraming(socket, {
      limits: this.server.preAuthLimits,
      secureContext: this.tls.context(this.server.config.domain),
      requestCert: true,
      handshakeTimeout: this.server.config.limits.tlsHandshakeTimeout * 1000,
    });
    const stream = new IncomingStream(this, framing, (s) => this.incoming.delete(s));
    this.incoming.add(stream);
    if (this.stopped) stream.close('system-shutdown');
    else if (!withinLimit) stream.close('policy-violation', 'too many connections from your address');
  }

  /** RemoteRoute: a stanza from one of our domains to a remote domain. */
  send(stanza: Element, toDomain: string, fromDomain: string): void {
    if (!this.isHosted(fromDomain)) {
      this.log.warn('not sending a stanza from a domain we do not host', { from: fromDomain, to: toDomain });
      return;
    }
    if (this.stopped) {
      this.server.router.bounce(stanza, 'remote-server-not-found');
      return;
    }
    const key = `${fromDomain} ${toDomain}`;
    let link = this.links.get(key);
    if (!link || link.state === 'closed') {
      link = new OutgoingStream(this, fromDomain, toDomain, 'link', (l) => {
        if (this.links.get(key) === l) this.links.delete(key);
      });
      this.links.set(key, link);
      // The link outlives the stanza that opened it: its socket must not
      // carry that stanza's context (stream/inbound-context.ts).
      const starting = link;
      detached(() => starting.start());
    }
    link.send(outgoingCopy(stanza));
  }

  /**
   * The XEP-0220 authoritative check: asks `originating` (on a connection
   * of its own) whether `key`, presented to us as `receiving` on stream
   * `streamId`, is genuine.
   */
  verifyDialback(
    receiving: string,
    originating: string,
    streamId: string,
    key: string,
  ): Promise<VerifyResult> {
    if (this.stopped) return Promise.resolve('error');
    const pair = `${receiving} ${originating}`;
    let verifier = this.verifiers.get(pair);
    if (!verifier || verifier.state === 'closed') {
      verifier = new OutgoingStream(this, receiving, originating, 'verify', (v) => {
        if (this.verifiers.get(pair) === v) this.verifiers.delete(pair);
      });
      this.verifiers.set(pair, verifier);
      detached(() => verifier!.start());
    }
    return verifier.requestVerify(streamId, key);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.server.router.remote === this) this.server.router.remote = null;
    for (const s of [...this.incoming]) s.close('system-shutdown', 'the server is shutting down');
    for (const l of [...this.links.values(), ...this.verifiers.values()]) l.close();
    await closeAll(this.listeners);
  }
}

/**
 * The stanza as it goes on a jabber:server stream: a copy (the router may
 * hand the same element elsewhere) without a jabber:client namespace, so it
 * inherits the stream's.
 */
function outgoingCopy(stanza: Element): Element {
  const copy = clone(stanza);
  delete copy.attrs.xmlns;
  return copy;
}

export function s2sServiceFactory(server: Server): S2SService | null {
  const { port, directTlsPort } = server.config.s2s;
  if (port === false && directTlsPort === false) return null;
  return new S2SService(server);
}
