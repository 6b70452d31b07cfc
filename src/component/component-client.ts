// The other side of XEP-0114: jabberfly as a component of another server
// (`jabberfly transport`). Connects to that server's component port, opens a
// jabber:component:accept stream for its domain, answers the handshake, and
// then carries stanzas both ways. A dropped link is retried with doubling
// delays (1 s up to transport.reconnectMaxDelay); a refusal that retrying
// cannot fix (wrong secret, unknown domain) before the first success is
// reported to whoever started it instead.
import { connect, type Socket } from 'node:net';
import type { Logger } from '../log.ts';
import { isStanza, isStreamElement } from '../s2s/stanza-names.ts';
import { TcpFraming } from '../stream/tcp-framing.ts';
import { clone, type Element, el, escapeXML } from '../xml/element.ts';
import { NS } from '../xml/namespaces.ts';
import type { ParserLimits } from '../xml/stream-parser.ts';
import { handshakeDigest } from './handshake.ts';

export interface ComponentLinkOptions {
  host: string;
  port: number;
  domain: string;
  secret: string;
  limits: ParserLimits;
  /** Seconds of silence before a whitespace keepalive. */
  keepaliveInterval: number;
  /** Longest delay between reconnection attempts, in seconds. */
  reconnectMaxDelay: number;
  log: Logger;
}

export interface ComponentLinkEvents {
  /** The handshake succeeded: stanzas flow. */
  online(): void;
  stanza(stanza: Element): void;
  /** The link went down (it will be retried unless stopped). */
  offline(reason: string): void;
}

/** The server refused us for a reason a retry will not change. */
export class ComponentRefused extends Error {
  constructor(
    readonly condition: string,
    message: string,
  ) {
    super(message);
  }
}

const FATAL = new Set(['not-authorized', 'host-unknown', 'invalid-namespace', 'improper-addressing']);

export class ComponentLink {
  private framing: TcpFraming | null = null;
  private state: 'idle' | 'connecting' | 'handshake' | 'online' | 'stopped' = 'idle';
  private delay = 1000;
  private retryTimer: NodeJS.Timeout | null = null;
  private keepaliveTimer: NodeJS.Timeout | null = null;
  private everOnline = false;
  private firstResult: { resolve(): void; reject(err: Error): void } | null = null;
  /** Why the current connection is ending, when we know better than the socket. */
  private endReason: string | null = null;

  constructor(
    private readonly options: ComponentLinkOptions,
    private readonly events: ComponentLinkEvents,
  ) {}

  get online(): boolean {
    return this.state === 'online';
  }

  /** Connects; resolves at the first successful handshake, rejects on a refusal retrying cannot fix. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.firstResult = { resolve, reject };
      this.connect();
    });
  }

  /** Sends a stanza to the server; dropped (and said so) while the link is down. */
  send(stanza: Element): void {
    if (this.state !== 'online' || !this.framing) {
      this.options.log.debug('link down: stanza dropped', { name: stanza.name, to: stanza.attrs.to });
      return;
    }
    const copy = clone(stanza);
    delete copy.attrs.xmlns;
    this.framing.send(copy);
  }

  async stop(): Promise<void> {
    const wasOnline = this.state === 'online';
    this.state = 'stopped';
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    const framing = this.framing;
    this.framing = null;
    if (!framing) return;
    await new Promise<void>((resolve) => {
      framing.setHandlers({ open() {}, stanza() {}, close() {}, error() {}, end: () => resolve() });
      if (wasOnline) framing.closeStream();
      else framing.destroy();
      setTimeout(resolve, 2000).unref();
    });
  }

  private connect(): void {
    if (this.state === 'stopped') return;
    this.state = 'connecting';
    const { host, port, log } = this.options;
    const socket: Socket = connect({ host, port });
    socket.setKeepAlive(true, 60_000);
    const framing = new TcpFraming(socket, { limits: this.options.limits });
    this.framing = framing;
    this.endReason = null;
    framing.setHandlers({
      open: (attrs) => this.onOpen(framing, attrs),
      stanza: (s) => this.onElement(framing, s),
      close: () => framing.closeStream(),
      error: (condition, text) => {
        this.endReason = `${condition}: ${text}`;
        framing.destroy();
      },
      end: (r) => this.onEnd(framing, this.endReason ?? r),
    });
    socket.once('connect', () => {
      if (this.framing !== framing || this.state === 'stopped') return;
      log.debug('connected, opening the component stream', { server: `${host}:${port}` });
      this.state = 'handshake';
      framing.write(
        `<?xml version='1.0'?><stream:stream xmlns='${NS.component}' xmlns:stream='${NS.stream}' to='${escapeXML(this.options.domain)}'>`,
      );
    });
  }

  private onOpen(framing: TcpFraming, attrs: Record<string, string>): void {
    if (this.framing !== framing || this.state !== 'handshake') return;
    const id = attrs.id;
    if (!id) {
      framing.destroy();
      return;
    }
    framing.send(el('handshake', null, handshakeDigest(id, this.options.secret)));
  }

  private onElement(framing: TcpFraming, e: Element): void {
    if (this.framing !== framing) return;
    if (isStreamElement(e, 'error')) {
      const condition = e.children.find((c): c is Element => typeof c !== 'string' && c.name !== 'text')?.name ?? 'undefined-condition';
      const text = e.getChildText('text', NS.streams) ?? '';
      this.endReason = `stream error ${condition}${text ? `: ${text}` : ''}`;
      if (!this.everOnline && FATAL.has(condition)) {
        this.state = 'stopped';
        this.firstResult?.reject(new ComponentRefused(condition, refusal(condition, this.options, text)));
        this.firstResult = null;
      }
      framing.destroy();
      return;
    }
    if (this.state === 'handshake' && e.name === 'handshake') {
      this.state = 'online';
      this.everOnline = true;
      this.delay = 1000;
      this.startKeepalive(framing);
      this.options.log.info('connected as a component', {
        server: `${this.options.host}:${this.options.port}`,
        domain: this.options.domain,
      });
      this.firstResult?.resolve();
      this.firstResult = null;
      this.events.online();
      return;
    }
    if (this.state === 'online' && isStanza(e)) {
      const ns = e.attrs.xmlns;
      if (ns === undefined || ns === NS.component || ns === NS.client) {
        delete e.attrs.xmlns;
        this.events.stanza(e);
      }
    }
  }

  private startKeepalive(framing: TcpFraming): void {
    const interval = this.options.keepaliveInterval * 1000;
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    this.keepaliveTimer = setInterval(() => {
      if (framing.lastWrite < Date.now() - interval) framing.keepalive();
    }, interval / 2);
    this.keepaliveTimer.unref();
  }

  private onEnd(framing: TcpFraming, reason: string): void {
    if (this.framing !== framing) return;
    this.framing = null;
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    this.keepaliveTimer = null;
    const wasOnline = this.state === 'online';
    if (this.state === 'stopped') return;
    this.state = 'idle';
    if (wasOnline) this.events.offline(reason);
    const wait = this.delay;
    this.delay = Math.min(this.delay * 2, this.options.reconnectMaxDelay * 1000);
    this.options.log.warn('component link down, retrying', {
      server: `${this.options.host}:${this.options.port}`,
      reason,
      retryInSeconds: Math.round(wait / 1000),
    });
    this.retryTimer = setTimeout(() => this.connect(), wait);
    this.retryTimer.unref();
  }
}

function refusal(condition: string, o: ComponentLinkOptions, text: string): string {
  const where = `${o.host}:${o.port}`;
  const detail = text ? ` (${text})` : '';
  if (condition === 'not-authorized') return `the server at ${where} refused the secret for ${o.domain}${detail}`;
  if (condition === 'host-unknown') return `the server at ${where} has no component ${o.domain} configured${detail}`;
  return `the server at ${where} refused the component stream: ${condition}${detail}`;
}
