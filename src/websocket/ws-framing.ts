// XML streams over WebSocket (RFC 7395): every message is one complete
// element, the stream is opened and closed by <open/> and <close/> in the
// framing namespace, and each element carries its own namespaces. The
// session on top is the same C2SSession as for TCP.
import type { TLSSocket } from 'node:tls';
import type { WebSocket } from 'ws';
import { type ChannelBinding, NO_CHANNEL_BINDING, tlsChannelBinding } from '../auth/channel-binding.ts';
import type { Framing, FramingHandlers, StreamHeader } from '../stream/framing.ts';
import { Element, el } from '../xml/element.ts';
import { NS } from '../xml/namespaces.ts';
import { xmlString } from '../xml/serialize.ts';
import { type ParserLimits, XmlStreamParser } from '../xml/stream-parser.ts';

// Each message is parsed as the only child of a wrapper element, so the
// stream parser applies the same restricted-XML rules and limits as on TCP
// while a message can never leave an element open for the next one.
const WRAP_OPEN = Buffer.from('<ws-message>');
const WRAP_CLOSE = Buffer.from('</ws-message>');

// Grace for a peer that never answers the WebSocket closing handshake.
const CLOSE_GRACE_MS = 5000;

export class WsFraming implements Framing {
  readonly transport = 'websocket' as const;
  readonly canStartTls = false;
  private handlers: FramingHandlers | null = null;
  private readonly parser: XmlStreamParser;
  /** Set while one message is fed to the parser; the wrapper must close only at its end. */
  private inMessage = false;
  private wrapperClosed = false;
  private seeOtherUri: string | null = null;
  private closed = false;
  private readonly binding: ChannelBinding;

  channelBinding(): ChannelBinding {
    return this.binding;
  }

  constructor(
    private readonly ws: WebSocket,
    readonly remoteAddress: string,
    readonly secure: boolean,
    private limits: ParserLimits,
    readonly secureAlternative?: string,
    /** The TLS socket under the WebSocket when it is ours (the https listener), for channel binding. */
    tls?: TLSSocket,
  ) {
    this.binding = tls ? tlsChannelBinding(tls) : NO_CHANNEL_BINDING;
    this.parser = new XmlStreamParser(limits, {
      open: () => {},
      stanza: (e) => this.onElement(e),
      close: () => this.onWrapperClose(),
      error: (condition, text) => this.handlers?.error(condition, text),
    });
    ws.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary));
    ws.on('close', () => this.end('connection closed'));
    // ws closes the connection itself on protocol errors (over-size frame:
    // 1009, bad UTF-8: 1007); without a listener the error would crash us.
    ws.on('error', (err) => this.end(`websocket error: ${err.message}`));
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.closed) return;
    if (isBinary) {
      // As Prosody does: RFC 7395 frames are text only.
      this.ws.close(1003, 'only text frames are supported');
      return;
    }
    // Checked here, exactly: the parser counts in 16 KiB pieces, which is
    // coarser than a whole message of one stanza.
    if (data.length > this.limits.maxStanzaSize) {
      this.handlers?.error('policy-violation', `stanza larger than ${this.limits.maxStanzaSize} bytes`);
      return;
    }
    this.parser.reset();
    this.wrapperClosed = false;
    this.parser.write(WRAP_OPEN);
    this.inMessage = true;
    this.parser.write(data);
    this.inMessage = false;
    this.parser.write(WRAP_CLOSE);
    if (!this.wrapperClosed && !this.closed) {
      // The parser reported an error already, or the message left an element open.
      this.handlers?.error('not-well-formed', 'a WebSocket message must hold complete elements');
    }
  }

  private onWrapperClose(): void {
    if (this.inMessage) {
      this.handlers?.error('not-well-formed', 'unexpected end tag');
      return;
    }
    this.wrapperClosed = true;
  }

  private onElement(e: Element): void {
    if (e.attrs.xmlns === NS.framing && e.name === 'open') this.handlers?.open(e.attrs, 'open');
    else if (e.attrs.xmlns === NS.framing && e.name === 'close') this.handlers?.close();
    else this.handlers?.stanza(e);
  }

  private end(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.parser.release();
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const fn of waiters) fn();
    this.handlers?.end(reason);
  }

  setHandlers(h: FramingHandlers): void {
    this.handlers = h;
  }

  openStream(h: StreamHeader): void {
    this.write(
      el('open', {
        xmlns: NS.framing,
        from: h.from,
        to: h.to,
        id: h.id,
        version: h.version,
        'xml:lang': 'en',
        ...h.extra,
      }),
    );
  }

  send(e: Element): void {
    const uri = seeOtherUri(e);
    if (uri) {
      // RFC 7395 §3.6.1: a WebSocket redirect is a see-other-uri on <close/>,
      // not a see-other-host stream error.
      this.seeOtherUri = uri;
      return;
    }
    this.write(withNamespaces(e));
  }

  private write(e: Element): void {
    if (!this.closed && this.ws.readyState === this.ws.OPEN) this.ws.send(xmlString(e), this.written);
  }

  private drainWaiters: Array<() => void> = [];
  /** After each frame is written out: wakes drain waiters once nothing is left. */
  private readonly written = (): void => {
    if (this.drainWaiters.length && this.unsentBytes === 0) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const fn of waiters) fn();
    }
  };

  get unsentBytes(): number {
    return this.ws.bufferedAmount;
  }

  onceDrained(fn: () => void): void {
    if (this.unsentBytes === 0 || this.closed) setImmediate(fn);
    else this.drainWaiters.push(fn);
  }

  closeStream(): void {
    if (this.closed) return;
    this.write(el('close', { xmlns: NS.framing, 'see-other-uri': this.seeOtherUri }));
    this.closed = true;
    this.ws.close(1000);
    setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS).unref();
  }

  startTls(done: (err?: Error) => void): void {
    done(new Error('no STARTTLS over WebSocket: use wss://'));
  }

  restart(): void {
    // Each message is parsed on its own, so a restart needs no parser reset:
    // the client simply sends a new <open/>.
  }

  setLimits(limits: ParserLimits): void {
    this.limits = limits;
    this.parser.setLimits(limits);
  }

  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  destroy(): void {
    this.ws.terminate();
    this.end('destroyed');
  }
}

/**
 * Elements on a WebSocket stand alone (RFC 7395 §3.3.3): stanzas get
 * xmlns='jabber:client' and stream-level elements their stream prefix
 * declaration. A shallow copy keeps the shared element untouched, since the
 * router may hand the same element to several sessions.
 */
function withNamespaces(e: Element): Element {
  const attrs = { ...e.attrs };
  attrs.xmlns ??= NS.client;
  if (e.name.startsWith('stream:')) {
    attrs['xmlns:stream'] ??= NS.stream;
    if (attrs.xmlns === NS.client) delete attrs.xmlns;
  }
  const copy = new Element(e.name, attrs);
  copy.children = e.children;
  return copy;
}

/** The ws:// or wss:// target of a see-other-host stream error, if it is one. */
function seeOtherUri(e: Element): string | null {
  if (e.name !== 'stream:error') return null;
  const target = e.getChildText('see-other-host', NS.streams)?.trim();
  return target && /^wss?:\/\/[^\s]+$/.test(target) ? target : null;
}
