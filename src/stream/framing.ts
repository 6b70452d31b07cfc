// The seam between the stream state machine and a transport. TCP streams
// frame XML as one long document; WebSocket (RFC 7395) frames one element
// per message with <open/> and <close/>. Both deliver the same events, so
// c2s negotiation, SASL, limits and sessions exist once.
import type { Element } from '../xml/element.ts';
import type { StreamErrorCondition } from '../xml/stream-parser.ts';

export interface FramingHandlers {
  open(attrs: Record<string, string>, name: string): void;
  stanza(el: Element): void;
  close(): void;
  /** Bad XML or a limit: the session answers with a stream error. */
  error(condition: StreamErrorCondition, text: string): void;
  /** The transport is gone (socket closed or failed). */
  end(reason: string): void;
}

export interface StreamHeader {
  from: string;
  to?: string;
  id: string;
  version?: string;
  /** Default namespace of the stream: jabber:client or jabber:server. */
  xmlns: string;
  extra?: Record<string, string>;
}

export interface Framing {
  readonly transport: 'tcp' | 'websocket';
  readonly remoteAddress: string;
  readonly secure: boolean;
  /** Whether STARTTLS can be offered (TCP without TLS yet). */
  readonly canStartTls: boolean;
  /** Where the same stream can be had over TLS (a wss:// URL), to tell a plain client that must use it. */
  readonly secureAlternative?: string;
  setHandlers(h: FramingHandlers): void;
  openStream(header: StreamHeader): void;
  send(el: Element): void;
  /** Sends the closing tag and ends the transport once written. */
  closeStream(): void;
  /** Upgrades to TLS after <proceed/>; the parser restarts. */
  startTls(done: (err?: Error) => void): void;
  /** Starts a fresh XML stream on the same transport (after SASL). */
  restart(): void;
  /** Drops the transport now. */
  destroy(): void;
  /** When something was last written (ms since epoch), for keepalives. */
  readonly lastWrite?: number;
  /**
   * Sends a keepalive the transport understands (whitespace on TCP).
   * Transports with keepalives of their own (WebSocket ping) leave it out.
   */
  keepalive?(): void;
  /** Changes the parser limits (pre-authentication → authenticated). */
  setLimits(limits: import('../xml/stream-parser.ts').ParserLimits): void;
  /** Bytes accepted for sending but not yet handed to the operating system. */
  readonly unsentBytes: number;
  /** Calls `fn` once nothing is left unsent (at once if nothing is). */
  onceDrained(fn: () => void): void;
  /** Stops reading input (backpressure: a stream this one feeds is full). */
  pause?(): void;
  resume?(): void;
  /** The TLS channel bindings of this connection (SCRAM-*-PLUS, HT-*); absent or empty without TLS. */
  channelBinding?(): import('../auth/channel-binding.ts').ChannelBinding;
  /** TLS peer certificate, for SASL EXTERNAL on s2s. */
  peerCertificate?(): import('node:tls').PeerCertificate | null;
}
