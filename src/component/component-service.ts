// External components (XEP-0114): the listener on component.port (loopback
// unless component.listen says otherwise), one host per configured
// component domain, and which component stream currently serves each.
//
// A component's domain is a host like any other: the router delivers
// stanzas for it (and for every JID at it) to the host, whose one module
// relays them down the component's stream; while the component is not
// connected they bounce with service-unavailable (type wait) saying so. The
// domain is listed in the server's disco#items either way, and s2s accepts
// it as one of ours. A component that reconnects replaces its old stream
// (which gets a conflict stream error), so a restarted component is back at
// once even when the old TCP connection has not noticed yet.
//
// Off when no component is configured or component.port is false.
import { createServer as createTcpServer, type Server as NetServer, type Socket } from 'node:net';
import type { StatusSection } from '../admin/status-sections.ts';
import type { ComponentConfig } from '../config/schema.ts';
import { Host, type Module, type StanzaEvent } from '../host/host.ts';
import type { Logger } from '../log.ts';
import type { Server } from '../server.ts';
import type { Service } from '../services.ts';
import { TcpFraming } from '../stream/tcp-framing.ts';
import { closeAll, listenAll } from '../util/listen.ts';
import type { Element } from '../xml/element.ts';
import { StanzaError } from '../xml/errors.ts';
import { ComponentStream } from './component-stream.ts';
import { installPrivileges } from './privileges.ts';

const KINDS = ['message', 'presence', 'iq'];
const DESTINATIONS = ['host', 'bare', 'full'];

export class ComponentService implements Service {
  readonly log: Logger;
  port: number | null = null;
  readonly streams = new Set<ComponentStream>();
  /** Domain → the stream that completed its handshake and serves it. */
  private readonly links = new Map<string, ComponentStream>();
  /** Domain → when it last connected or went away (for status). */
  private readonly changed = new Map<string, number>();
  private readonly perIp = new Map<string, number>();
  private readonly listeners: NetServer[] = [];
  private readonly connectListeners: Array<(domain: string) => void> = [];
  private readonly disconnectListeners: Array<(domain: string) => void> = [];
  private keepaliveTimer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(readonly server: Server) {
    this.log = server.log.child('component');
  }

  private get configured(): Record<string, ComponentConfig> {
    return this.server.config.components;
  }

  isComponent(domain: string): boolean {
    return Object.hasOwn(this.configured, domain);
  }

  secretOf(domain: string): string | undefined {
    return this.configured[domain]?.secret;
  }

  privilegesOf(domain: string): ComponentConfig['privileges'] | undefined {
    return this.configured[domain]?.privileges;
  }

  /** Whether a component is connected and past its handshake. */
  connected(domain: string): boolean {
    return this.links.has(domain);
  }

  /** Domains connected right now. */
  connectedDomains(): string[] {
    return [...this.links.keys()];
  }

  /** Sends straight down a connected component's stream; false when it is not connected. */
  sendTo(domain: string, stanza: Element): boolean {
    const link = this.links.get(domain);
    if (!link) return false;
    link.send(stanza);
    return true;
  }

  /** Runs after each successful handshake (privileges announce themselves here). */
  onConnect(fn: (domain: string) => void): void {
    this.connectListeners.push(fn);
  }

  /** Runs when the link serving a domain ends (cluster mode gives up its claim). */
  onDisconnect(fn: (domain: string) => void): void {
    this.disconnectListeners.push(fn);
  }

  async start(): Promise<void> {
    const { config } = this.server;
    for (const domain of Object.keys(this.configured)) {
      const host = new Host(domain, this.server, { userHost: false });
      this.server.hosts.set(domain, host);
      await host.load([this.relay(domain)]);
      this.changed.set(domain, Date.now());
    }
    const main = this.server.hosts.get(config.domain);
    if (main) installPrivileges(main, this);
    const bound = await listenAll(
      () => createTcpServer((s) => this.accept(s)),
      config.component.port as number,
      config.component.listen,
    );
    this.port = bound.port;
    this.listeners.push(...bound.servers);
    const interval = config.limits.keepaliveInterval * 1000;
    this.keepaliveTimer = setInterval(() => {
      const before = Date.now() - interval;
      for (const s of this.links.values()) s.keepaliveIfIdle(before);
    }, interval / 2);
    this.keepaliveTimer.unref();
    this.server.statusSections.add('components', () => this.status());
    this.log.info('components enabled', {
      port: this.port,
      listen: config.component.listen.join(',') || '*',
      domains: Object.keys(this.configured).join(','),
    });
  }

  /** The component host's one module: everything addressed to the domain goes down the stream. */
  private relay(domain: string): Module {
    return (host) => {
      const forward = (e: StanzaEvent) => {
        if (this.sendTo(domain, e.stanza)) return true;
        return this.bounceGone(domain, e.stanza);
      };
      // Above iq dispatch (0) and anything else: the component answers for its domain.
      for (const kind of KINDS) for (const dest of DESTINATIONS) host.hook(`${kind}/${dest}`, forward, 1000);
    };
  }

  /** A component that is not connected is gone: say so, except to errors, results and unavailable presence. */
  private bounceGone(domain: string, stanza: Element): true {
    const type = stanza.attrs.type;
    if (type === 'error' || type === 'result' || (stanza.name === 'presence' && type === 'unavailable')) return true;
    this.server.router.bounce(stanza, new StanzaError('service-unavailable', `${domain} is not connected`, 'wait'));
    return true;
  }

  private accept(socket: Socket): void {
    const ip = socket.remoteAddress ?? 'unknown';
    const count = (this.perIp.get(ip) ?? 0) + 1;
    this.perIp.set(ip, count);
    socket.once('close', () => {
      const n = (this.perIp.get(ip) ?? 1) - 1;
      if (n <= 0) this.perIp.delete(ip);
      else this.perIp.set(ip, n);
    });
    socket.setKeepAlive(true, 60_000);
    // No TLS: XEP-0114 has none, hence loopback by default.
    const framing = new TcpFraming(socket, { limits: this.server.parserLimits });
    const stream = new ComponentStream(this, framing, (s) => this.detach(s));
    this.streams.add(stream);
    if (this.stopped) stream.close('system-shutdown', 'the server is shutting down');
    else if (count > this.server.config.limits.maxConnectionsPerIp) {
      stream.close('policy-violation', 'too many connections from your address');
    }
  }

  /** A stream finished its handshake: it now serves its domain. */
  attach(stream: ComponentStream): void {
    const domain = stream.domain!;
    const old = this.links.get(domain);
    this.links.set(domain, stream);
    this.changed.set(domain, Date.now());
    if (old && old !== stream) old.close('conflict', 'replaced by a new connection of the same component');
    this.log.info('component connected', { domain, ip: stream.ip });
    for (const fn of this.connectListeners) fn(domain);
  }

  private detach(stream: ComponentStream): void {
    this.streams.delete(stream);
    const domain = stream.domain;
    if (!domain || this.links.get(domain) !== stream) return;
    this.links.delete(domain);
    this.changed.set(domain, Date.now());
    this.log.info('component disconnected', { domain, ip: stream.ip });
    for (const fn of this.disconnectListeners) fn(domain);
  }

  private status(): StatusSection {
    const out: StatusSection = { port: this.port };
    for (const domain of Object.keys(this.configured)) {
      const link = this.links.get(domain);
      const since = new Date(this.changed.get(domain) ?? Date.now()).toISOString();
      out[domain] = link ? `connected from ${link.ip} since ${since}` : `not connected (since ${since})`;
    }
    return out;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    this.server.statusSections.remove('components');
    for (const s of [...this.streams]) s.close('system-shutdown', 'the server is shutting down');
    await closeAll(this.listeners);
  }
}

export function componentServiceFactory(server: Server): ComponentService | null {
  if (server.config.component.port === false || Object.keys(server.config.components).length === 0) return null;
  return new ComponentService(server);
}
