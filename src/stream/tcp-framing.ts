// XML streams over TCP and TLS sockets (RFC 6120 §4): one document per
// stream, STARTTLS in place, a fresh parser at every restart.
import type { Socket } from 'node:net';
import { connect as tlsConnect, type PeerCertificate, type SecureContext, TLSSocket } from 'node:tls';
import { type ChannelBinding, NO_CHANNEL_BINDING, tlsChannelBinding } from '../auth/channel-binding.ts';
import type { Element } from '../xml/element.ts';
import { escapeXML } from '../xml/element.ts';
import { xmlString } from '../xml/serialize.ts';
import { type ParserLimits, XmlStreamParser } from '../xml/stream-parser.ts';
import type { Framing, FramingHandlers, StreamHeader } from './framing.ts';
import { TlsPacedWriter } from './tls-paced-writer.ts';

export interface TcpFramingOptions {
  limits: ParserLimits;
  /** Server side: the context for STARTTLS; absent means no STARTTLS. */
  secureContext?: SecureContext;
  /** Client side (outgoing s2s) STARTTLS: connect as a TLS client. */
  tlsClient?: { servername: string; secureContext: SecureContext };
  /** Request (but do not require) a client certificate on STARTTLS. */
  requestCert?: boolean;
  /** Milliseconds a STARTTLS handshake may take before the connection is dropped. */
  handshakeTimeout?: number;
}

export class TcpFraming implements Framing {
  readonly transport = 'tcp' as const;
  readonly remoteAddress: string;
  private socket: Socket;
  /** Output to the TLS socket, paced while small (see tls-paced-writer.ts); null before TLS. */
  private tlsOut: TlsPacedWriter | null = null;
  private handlers: FramingHandlers | null = null;
  private readonly parser: XmlStreamParser;
  private closed = false;
  private tlsActive: boolean;
  lastWrite = Date.now();
  private pending: string[] | null = null;
  /** Characters in `pending` (about its bytes). */
  private pendingLength = 0;
  /** Set after bad input: the peer's close will never be read, so ours does not wait for it. */
  private inputAbandoned = false;

  constructor(
    socket: Socket,
    private readonly options: TcpFramingOptions,
  ) {
    this.socket = socket;
    this.remoteAddress = socket.remoteAddress ?? 'unknown';
    this.tlsActive = socket instanceof TLSSocket;
    this.parser = new XmlStreamParser(options.limits, {
      open: (name, attrs) => this.handlers?.open(attrs, name),
      stanza: (el) => this.handlers?.stanza(el),
      close: () => this.handlers?.close(),
      error: (c, t) => {
        // The stream is over: nothing more from this peer is worth reading
        // (or decrypting) while the stream error goes out.
        this.inputAbandoned = true;
        this.socket.pause();
        this.handlers?.error(c, t);
      },
    });
    this.attach(socket);
  }

  get secure(): boolean {
    return this.tlsActive;
  }

  get canStartTls(): boolean {
    return !this.tlsActive && (this.options.secureContext !== undefined || this.options.tlsClient !== undefined);
  }

  private attach(socket: Socket): void {
    this.tlsOut = socket instanceof TLSSocket ? new TlsPacedWriter(socket, this.onOutputIdle) : null;
    socket.setNoDelay(true);
    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
  }

  private detach(socket: Socket): void {
    socket.off('data', this.onData);
    socket.off('error', this.onError);
    socket.off('close', this.onClose);
  }

  private readonly onData = (chunk: Buffer) => this.parser.write(chunk);
  private readonly onError = (err: Error) => {
    this.end(`socket error: ${err.message}`);
  };
  private readonly onClose = () => this.end('connection closed');

  private end(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.parser.release();
    this.wakeDrainWaiters();
    this.handlers?.end(reason);
  }

  setHandlers(h: FramingHandlers): void {
    this.handlers = h;
  }

  openStream(h: StreamHeader): void {
    let s = `<?xml version='1.0'?><stream:stream xmlns='${h.xmlns}' xmlns:stream='http://etherx.jabber.org/streams'`;
    s += ` from='${escapeXML(h.from)}' id='${escapeXML(h.id)}'`;
    if (h.to) s += ` to='${escapeXML(h.to)}'`;
    if (h.version) s += ` version='${h.version}'`;
    s += " xml:lang='en'";
    for (const [k, v] of Object.entries(h.extra ?? {})) s += ` ${k}='${escapeXML(v)}'`;
    this.write(`${s}>`);
  }

  send(el: Element): void {
    this.write(xmlString(el));
  }

  write(s: string): void {
    if (this.closed || !this.socket.writable) return;
    this.lastWrite = Date.now();
    // The first write of an event-loop turn goes out at once; the rest of
    // that turn's writes are joined into one (one TLS record, one system
    // call, as far as the TLS pacing lets them), so a presence broadcast or a
    // burst of messages costs a fraction of a write per stanza.
    if (this.pending) {
      this.pending.push(s);
      this.pendingLength += s.length;
      return;
    }
    this.out(this.socket, s);
    this.pending = [];
    const socket = this.socket;
    process.nextTick(() => this.flush(socket));
  }

  /** Writes the batch to the socket it was meant for (STARTTLS may have replaced it since). */
  private flush(socket: Socket): void {
    const batch = this.pending;
    if (!batch) return;
    this.pending = null;
    this.pendingLength = 0;
    if (batch.length && socket.writable) this.out(socket, batch.length === 1 ? batch[0]! : batch.join(''));
  }

  /** To the TLS pacing while `socket` is the current, still paced TLS socket; else straight to the socket. */
  private out(socket: Socket, s: string): void {
    if (this.tlsOut && !this.tlsOut.bulk && socket === this.socket) this.tlsOut.write(s);
    else socket.write(s);
  }

  get unsentBytes(): number {
    return this.socket.writableLength + this.pendingLength + (this.tlsOut?.pending ?? 0);
  }

  private drainWaiters: Array<() => void> = [];

  onceDrained(fn: () => void): void {
    // A socket over its high-water mark (16 KiB; callers ask only far above
    // it) emits 'drain' once its buffer is empty; a socket that ends first
    // wakes its waiters too (end()).
    if (this.unsentBytes === 0 || this.closed) {
      setImmediate(fn);
      return;
    }
    // Paced TLS output reports its own idle moments (onOutputIdle); the
    // pacer also reports the end of the bulk write that ends pacing.
    if (this.drainWaiters.length === 0 && (!this.tlsOut || this.tlsOut.bulk)) this.socket.once('drain', this.wakeDrainWaiters);
    this.drainWaiters.push(fn);
  }

  private readonly onOutputIdle = (): void => {
    if (this.drainWaiters.length && this.unsentBytes === 0) this.wakeDrainWaiters();
  };

  private readonly wakeDrainWaiters = (): void => {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const fn of waiters) fn();
  };

  /** RFC 6120 §4.6.1: a single space keeps NATs open and exposes dead peers. */
  keepalive(): void {
    this.write(' ');
  }

  closeStream(): void {
    if (this.closed) return;
    this.write('</stream:stream>');
    this.flush(this.socket);
    this.tlsOut?.flushAll();
    const socket = this.socket;
    if (this.inputAbandoned) socket.once('finish', () => socket.destroy());
    socket.end();
    // A peer that never closes its side must not hold the socket forever.
    setTimeout(() => this.socket.destroy(), 5000).unref();
  }

  startTls(done: (err?: Error) => void): void {
    const raw = this.socket;
    // <proceed/> must be on the wire before the handshake starts.
    this.flush(raw);
    this.detach(raw);
    let tls: TLSSocket;
    if (this.options.tlsClient) {
      tls = tlsConnect({
        socket: raw,
        servername: this.options.tlsClient.servername,
        secureContext: this.options.tlsClient.secureContext,
        rejectUnauthorized: false, // verification is judged by s2s policy, not here
      });
    } else {
      tls = new TLSSocket(raw, {
        isServer: true,
        secureContext: this.options.secureContext,
        requestCert: this.options.requestCert ?? false,
        rejectUnauthorized: false,
      });
    }
    this.socket = tls;
    this.tlsActive = true;
    this.parser.reset();
    let settled = false;
    const ready = this.options.tlsClient ? 'secureConnect' : 'secure';
    // A peer that asks for TLS and then never completes it must not hold the connection.
    const timer = this.options.handshakeTimeout
      ? setTimeout(() => {
          if (settled) return;
          settled = true;
          tls.destroy();
          done(new Error('TLS handshake timed out'));
        }, this.options.handshakeTimeout)
      : null;
    timer?.unref();
    tls.once(ready, () => {
      if (timer) clearTimeout(timer);
      if (settled) return;
      settled = true;
      done();
    });
    tls.once('error', (err) => {
      if (timer) clearTimeout(timer);
      if (!settled) {
        settled = true;
        done(err);
      }
    });
    this.attach(tls);
  }

  restart(): void {
    this.parser.reset();
  }

  setLimits(limits: ParserLimits): void {
    this.parser.setLimits(limits);
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  destroy(): void {
    this.socket.destroy();
    this.end('destroyed');
  }

  private binding: { socket: Socket; binding: ChannelBinding } | null = null;

  channelBinding(): ChannelBinding {
    // Server side only: the bindings are of our certificate and this TLS session.
    if (!(this.socket instanceof TLSSocket) || this.options.tlsClient) return NO_CHANNEL_BINDING;
    if (this.binding?.socket !== this.socket) this.binding = { socket: this.socket, binding: tlsChannelBinding(this.socket) };
    return this.binding.binding;
  }

  peerCertificate(): PeerCertificate | null {
    if (!(this.socket instanceof TLSSocket)) return null;
    const cert = this.socket.getPeerCertificate(true);
    return cert && Object.keys(cert).length > 0 ? cert : null;
  }

  /** Whether the TLS peer certificate verified against our trusted CAs. */
  peerAuthorized(): boolean {
    return this.socket instanceof TLSSocket && this.socket.authorized;
  }
}
