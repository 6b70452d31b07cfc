// Browser access: an HTTP server on http.port and an HTTPS server on
// https.port (the server's certificates, chosen by SNI), both serving
//   /xmpp-websocket          XMPP over WebSocket (RFC 7395) into C2SSession
//   /.well-known/host-meta   XEP-0156 discovery (XRD, and .json)
//   /status                  public health information as JSON
//   /                        the Converse.js web client (http.webClient)
//   /upload/                 XEP-0363 file upload and download (upload-routes.ts)
import { msnGatewayOf } from '../gateway/msn/gateway.ts';
import { MSN_FILES_PATH } from '../gateway/msn/files.ts';
import { msnTransportStatus } from '../gateway/msn/status.ts';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  STATUS_CODES,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Server as NetServer, Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { type WebSocket, WebSocketServer } from 'ws';
import { ACME_CHALLENGE_PATH } from '../acme/challenges.ts';
import { tlsAlpnFront } from '../acme/tls-alpn-front.ts';
import { C2SSession } from '../c2s/c2s-session.ts';
import { servedDomains } from '../config/domains.ts';
import type { Logger } from '../log.ts';
import type { Server } from '../server.ts';
import type { Service } from '../services.ts';
import { uploadServiceOf } from '../upload/upload-service.ts';
import { ConnectionsPerAddress } from '../util/address-limit.ts';
import { closeAll, listenAll } from '../util/listen.ts';
import { hostMetaJson, hostMetaXml, requestHostname, WEBSOCKET_PATH, websocketUrls } from './host-meta.ts';
import { type ClientAddress, clientAddress, plainIp } from './client-address.ts';
import { OriginPolicy, type OwnPorts } from './origin-policy.ts';
import { StaticFiles } from './static-files.ts';
import { UPLOAD_PREFIX, UploadRoutes } from './upload-routes.ts';
import {
  CONVERSE_PREFIX,
  converseDistDir,
  OMEMO_WASM_PATH,
  START_SCRIPT,
  START_SCRIPT_PATH,
  webClientPage,
} from './web-client.ts';
import { VERSION } from '../version.ts';
import { WsFraming } from './ws-framing.ts';


// Frames up to this much over the stanza limit are still read, so the XML
// parser can answer them like TCP does (policy-violation stream error);
// larger ones are cut by ws from the frame header alone (close code 1009).
const FRAME_SLACK = 64 * 1024;

// Sent with every response. No HSTS: it would apply to every port of the
// host and lock browsers out of the plain HTTP port.
const COMMON_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
};

// Converse needs inline styles (lit) and WebAssembly (OMEMO); scripts come
// only from us; 'self' covers same-origin ws:/wss: in CSP 3. `files` is the
// upload service's origin (upload.<domain>): Converse PUTs files there and plays media from it.
function pageCsp(files: string | null): string {
  const extra = files ? ` ${files}` : '';
  return [
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "style-src 'self' 'unsafe-inline'",
    // Nothing from other sites: pictures in messages from elsewhere stay links.
    `img-src 'self' data: blob:${extra}`,
    `media-src 'self' data: blob:${extra}`,
    "font-src 'self' data:",
    `connect-src 'self'${extra}`,
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

export class HttpService implements Service {
  /** Bound ports, null when disabled. */
  readonly ports: OwnPorts = { http: null, https: null };
  readonly sessions = new Set<C2SSession>();
  private readonly log: Logger;
  /** Listening sockets (the https one may be the TLS-ALPN-01 front). */
  private readonly servers: NetServer[] = [];
  private readonly httpServers: Array<ReturnType<typeof createHttpServer>> = [];
  private readonly wss: WebSocketServer;
  private readonly sockets = new Set<WebSocket>();
  private readonly awaitingPong = new WeakSet<WebSocket>();
  private readonly perIp = new Map<string, number>();
  /**
   * Every HTTP(S) connection per address, counted from the TCP accept, so
   * TLS handshakes that never finish and idle keep-alives count too. Twice
   * the WebSocket limit: a browser holds page connections beside its
   * WebSockets, and an address at its WebSocket limit still gets its 429.
   */
  private readonly connections = new ConnectionsPerAddress(() => 2 * this.server.config.limits.maxConnectionsPerIp);
  // Until the ports are known, only clients without an Origin get in.
  private origins = new OriginPolicy('', [], { http: null, https: null }, []);
  private converse: StaticFiles | null = null;
  private uploads: UploadRoutes | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private readonly acmeTlsAlpn: boolean;
  private readonly trustedProxies: ReadonlySet<string>;

  constructor(private readonly server: Server) {
    this.log = server.log.child('http');
    this.trustedProxies = new Set(server.config.http.trustedProxies.map(plainIp));
    this.acmeTlsAlpn = server.config.acme.enabled && server.config.acme.challenges.includes('tls-alpn-01');
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      maxPayload: server.config.limits.maxStanzaSize + FRAME_SLACK,
      // Requests without the subprotocol are refused before the handshake.
      handleProtocols: () => 'xmpp',
    });
  }

  async start(): Promise<void> {
    const { config } = this.server;
    if (config.http.webClient) {
      const dist = converseDistDir();
      if (dist) this.converse = new StaticFiles(dist);
      else this.log.warn('converse.js is not installed: the web client is disabled');
    }
    const uploadService = uploadServiceOf(this.server);
    if (uploadService) this.uploads = new UploadRoutes(uploadService, this.server.log.child('upload'));
    if (config.http.port !== false) {
      const make = () => {
        const s = this.attach(createHttpServer(), false);
        this.httpServers.push(s);
        return s;
      };
      const bound = await listenAll(make, config.http.port, config.listen);
      this.ports.http = bound.port;
      this.servers.push(...bound.servers);
    }
    if (config.https.port !== false) {
      const make = () => {
        const s = createHttpsServer({
          ...this.server.certs.serverOptions(),
          handshakeTimeout: this.server.config.limits.tlsHandshakeTimeout * 1000,
        });
        this.server.certs.onReload(() => s.setSecureContext(this.server.certs.serverOptions()));
        // A failed or timed-out handshake: Node reports it here but leaves the
        // connection open (measured), so it is closed here.
        s.on('tlsClientError', (_err: Error, socket: Socket) => socket.destroy());
        this.attach(s, true);
        this.httpServers.push(s);
        // TLS-ALPN-01 validations are answered in front of the https server.
        return this.acmeTlsAlpn ? tlsAlpnFront(s, this.server.acmeChallenges) : s;
      };
      const bound = await listenAll(make, config.https.port, config.listen);
      this.ports.https = bound.port;
      this.servers.push(...bound.servers);
    }
    // The MSN transport serves the files it receives from here (when it has no upload service).
    msnGatewayOf(this.server)?.files.setHttpsPort(this.ports.https);
    this.origins = new OriginPolicy(config.domain, config.listen, this.ports, config.http.allowedOrigins);
    uploadService?.setHttpsPort(this.ports.https);
    this.pingTimer = setInterval(() => this.pingAll(), config.limits.websocketPingInterval * 1000);
    this.pingTimer.unref();
    this.log.info('listening', { http: this.ports.http, https: this.ports.https });
  }

  private attach<S extends ReturnType<typeof createHttpServer>>(s: S, secure: boolean): S {
    s.on('connection', (socket: Socket) => {
      // A trusted reverse proxy carries many clients on its connections:
      // they are counted by their forwarded address (WebSocket limit, 429).
      if (this.trustedProxies.has(plainIp(socket.remoteAddress))) return;
      if (!this.connections.admit(socket)) socket.destroy();
    });
    s.on('request', (req: IncomingMessage, res: ServerResponse) => {
      this.onRequest(req, res, secure).catch((err) => {
        // The path only: a query may carry an upload token.
        this.log.error('request failed', { path: pathOf(req) ?? '', error: String(err) });
        if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal server error\n');
        else res.destroy();
      });
    });
    // Upload PUTs answer `Expect: 100-continue` once their checks pass; the rest at once.
    s.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
      if (!this.uploads || !UploadRoutes.isPut(req)) res.writeContinue();
      s.emit('request', req, res);
    });
    s.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) =>
      this.onUpgrade(req, socket, head, secure),
    );
    return s;
  }

  // --- WebSocket --------------------------------------------------------

  private onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer, secure: boolean): void {
    socket.on('error', () => socket.destroy());
    const client = clientAddress(req, this.trustedProxies);
    const refusal = this.refusal(req, client);
    if (refusal) {
      refuse(socket, refusal.status, refusal.text);
      return;
    }
    const ip = client.ip;
    const tls = secure || client.proxied?.secure === true;
    // For a plain client that must use TLS: the wss:// URL, by the name it used.
    const hostname = client.proxied?.host
      ? requestHostname(client.proxied.host, this.server.config.domain)
      : requestHostname(req.headers.host, this.server.config.domain);
    const alternative =
      tls || this.ports.https === null
        ? undefined
        : client.proxied
          ? `wss://${hostname}${WEBSOCKET_PATH}`
          : `wss://${hostname}:${this.ports.https}${WEBSOCKET_PATH}`;
    this.perIp.set(ip, (this.perIp.get(ip) ?? 0) + 1);
    socket.once('close', () => {
      const n = (this.perIp.get(ip) ?? 1) - 1;
      if (n <= 0) this.perIp.delete(ip);
      else this.perIp.set(ip, n);
    });
    // On our own TLS listener the stream can be bound to its TLS session (SCRAM-*-PLUS, FAST);
    // behind a proxy the TLS is the proxy's, and nothing is offered.
    const ownTls = socket instanceof TLSSocket ? socket : undefined;
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, ip, tls, alternative, ownTls));
  }

  /** Why a WebSocket handshake is refused, or null to accept it. */
  private refusal(req: IncomingMessage, client: ClientAddress): { status: number; text: string } | null {
    if (pathOf(req) !== WEBSOCKET_PATH) return { status: 404, text: 'no WebSocket endpoint here' };
    const protocols = String(req.headers['sec-websocket-protocol'] ?? '').split(',');
    if (!protocols.some((p) => p.trim() === 'xmpp')) {
      return { status: 400, text: "the 'xmpp' WebSocket subprotocol is required (RFC 7395)" };
    }
    const origin = req.headers.origin;
    if (!this.origins.allows(origin) && !sameOrigin(origin, client)) {
      // Logged at info so an admin sees which origin to add to http.allowedOrigins.
      this.log.info('WebSocket origin refused', { origin, ip: client.ip });
      return { status: 403, text: 'pages from this origin may not connect' };
    }
    if ((this.perIp.get(client.ip) ?? 0) >= this.server.config.limits.maxConnectionsPerIp) {
      return { status: 429, text: 'too many connections from your address' };
    }
    return null;
  }

  private accept(ws: WebSocket, ip: string, secure: boolean, secureAlternative?: string, tls?: TLSSocket): void {
    this.sockets.add(ws);
    ws.on('pong', () => this.awaitingPong.delete(ws));
    ws.on('close', () => this.sockets.delete(ws));
    const framing = new WsFraming(ws, ip, secure, this.server.preAuthLimits, secureAlternative, tls);
    const session = new C2SSession(this.server, framing, (s) => this.sessions.delete(s));
    this.sessions.add(session);
  }

  /** Drops peers that did not answer the previous ping (dead NAT, sleeping laptop). */
  private pingAll(): void {
    for (const ws of this.sockets) {
      if (this.awaitingPong.has(ws)) {
        this.log.debug('WebSocket peer stopped answering pings');
        ws.terminate();
        continue;
      }
      this.awaitingPong.add(ws);
      ws.ping();
    }
  }

  // --- HTTP -------------------------------------------------------------

  private async onRequest(req: IncomingMessage, res: ServerResponse, secure: boolean): Promise<void> {
    for (const [k, v] of Object.entries(COMMON_HEADERS)) res.setHeader(k, v);
    const reply = await this.route(req, res, secure);
    if (reply) send(res, reply.status, reply.type, reply.body);
  }

  /** Answers a request: a reply to send, or null when the response was written already. */
  private async route(req: IncomingMessage, res: ServerResponse, secure: boolean): Promise<Reply | null> {
    const path = pathOf(req);
    if (path === null) return text(400, 'bad request');
    if (path.startsWith(ACME_CHALLENGE_PATH)) {
      // HTTP-01 (RFC 8555 §8.3): the body is exactly the key authorization.
      const answer = this.server.acmeChallenges.httpAnswer(path.slice(ACME_CHALLENGE_PATH.length));
      return answer ? { status: 200, type: 'application/octet-stream', body: answer } : text(404, 'not found');
    }
    if (this.uploads && path.startsWith(UPLOAD_PREFIX)) {
      await this.uploads.handle(req, res, path, queryOf(req));
      return null;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return text(405, 'method not allowed');
    }
    const { config } = this.server;
    const msnFiles = secure && path.startsWith(MSN_FILES_PATH) ? msnGatewayOf(this.server)?.files : undefined;
    if (msnFiles) {
      const file = await msnFiles.serve(path);
      res.writeHead(file.status, { ...file.headers, 'Content-Length': file.body.length });
      res.end(req.method === 'HEAD' ? undefined : file.body);
      return null;
    }
    const client = clientAddress(req, this.trustedProxies);
    // Behind a trusted proxy: the name and scheme the client used there.
    const hostname = requestHostname(client.proxied?.host ?? req.headers.host, config.domain);
    const tls = secure || client.proxied?.secure === true;
    const urls = websocketUrls(hostname, this.ports, { plain: !config.c2s.requireTls, proxied: client.proxied });
    switch (path) {
      case WEBSOCKET_PATH:
        res.setHeader('Upgrade', 'websocket');
        return text(426, 'XMPP over WebSocket (RFC 7395): connect with the xmpp subprotocol');
      case '/.well-known/host-meta':
        res.setHeader('Access-Control-Allow-Origin', '*');
        return {
          status: 200,
          type: 'application/xrd+xml; charset=utf-8',
          body: hostMetaXml(urls),
        };
      case '/.well-known/host-meta.json':
        res.setHeader('Access-Control-Allow-Origin', '*');
        return { status: 200, type: JSON_TYPE, body: hostMetaJson(urls) };
      case '/status':
        res.setHeader('Cache-Control', 'no-store');
        return {
          status: 200,
          type: JSON_TYPE,
          // The client's address, not a local proxy's: a visitor through nginx is no operator.
          body: `${JSON.stringify(this.status(isLoopback(client.ip)), null, 2)}\n`,
        };
    }
    if (!this.converse) return text(404, 'not found');
    if (path === '/') {
      // Logins need TLS when c2s.requireTls is set: send browsers where they can log in.
      if (!tls && config.c2s.requireTls && this.ports.https !== null && !client.proxied) {
        res.setHeader('Location', `https://${hostname}:${this.ports.https}/`);
        return text(302, 'this chat needs HTTPS');
      }
      res.setHeader('Content-Security-Policy', pageCsp(uploadServiceOf(this.server)?.origin ?? null));
      res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
      res.setHeader('Cache-Control', 'no-cache');
      const page = webClientPage({
        domain: config.domain,
        siteName: config.http.siteName || config.domain,
        msn: config.msn.enabled ? { domain: config.msn.domain, configured: config.msn.server !== '' } : undefined,
        mediaDomains: servedDomains(config),
        registrationOpen: config.registration.open,
        mucDomain: config.muc.enabled ? config.muc.domain : undefined,
      });
      return { status: 200, type: 'text/html; charset=utf-8', body: page };
    }
    if (path === START_SCRIPT_PATH) {
      res.setHeader('Cache-Control', 'no-cache');
      return { status: 200, type: 'text/javascript; charset=utf-8', body: START_SCRIPT };
    }
    const file =
      path === OMEMO_WASM_PATH
        ? path.slice(1)
        : path.startsWith(CONVERSE_PREFIX)
          ? path.slice(CONVERSE_PREFIX.length)
          : null;
    if (file !== null && (await this.converse.serve(req, res, file))) return null;
    return text(404, 'not found');
  }

  /**
   * Public facts only: nothing about users or addresses. A client on the
   * loopback interface (the operator on the machine) also gets each user's
   * MSN transport state (connected, reconnecting, last error).
   */
  private status(operator: boolean): object {
    const { config } = this.server;
    const msn = !config.msn.enabled
      ? { enabled: false }
      : operator
        ? { enabled: true, ...msnTransportStatus(this.server) }
        : // Counts only: how many users have a transport session, how many are logged in to MSN.
          { enabled: true, ...msnGatewayOf(this.server)?.state() };
    return {
      software: 'jabberfly',
      version: VERSION,
      uptime: Math.floor((Date.now() - this.server.startedAt) / 1000),
      sessions: this.server.sessions.count,
      msn,
    };
  }

  async stop(): Promise<void> {
    if (this.pingTimer) clearInterval(this.pingTimer);
    for (const s of [...this.sessions]) s.close('system-shutdown', 'the server is shutting down');
    // Let the closing handshakes finish briefly, then cut what is left so
    // the listeners can close.
    const closed = [...this.sockets].map((ws) => new Promise((r) => ws.once('close', r)));
    await Promise.race([Promise.all(closed), new Promise((r) => setTimeout(r, 1000).unref())]);
    for (const ws of this.sockets) ws.terminate();
    const done = closeAll(this.servers);
    for (const s of this.httpServers) s.closeAllConnections();
    await done;
  }
}

/** The page a trusted proxy serves is our own: its Origin is the scheme and name the client used there. */
function sameOrigin(origin: string | undefined, client: ClientAddress): boolean {
  if (!origin || !client.proxied?.host) return false;
  try {
    const own = new URL(`${client.proxied.secure ? 'https' : 'http'}://${client.proxied.host}`).origin;
    return new URL(origin).origin === own;
  } catch {
    return false;
  }
}

function isLoopback(address: string | undefined): boolean {
  return address === '::1' || address?.replace(/^::ffff:/, '').startsWith('127.') === true;
}

/** The request's path (no query), or null if the target is not origin-form. */
function pathOf(req: IncomingMessage): string | null {
  const target = req.url ?? '';
  if (!target.startsWith('/')) return null;
  const q = target.search(/[?#]/);
  return q === -1 ? target : target.slice(0, q);
}

/** The request's query string, without the '?'. */
function queryOf(req: IncomingMessage): string {
  const target = req.url ?? '';
  const q = target.indexOf('?');
  return q === -1 ? '' : target.slice(q + 1).replace(/#.*$/, '');
}

interface Reply {
  status: number;
  type: string;
  body: string;
}

const JSON_TYPE = 'application/json; charset=utf-8';

function text(status: number, body: string): Reply {
  return { status, type: 'text/plain; charset=utf-8', body: `${body}\n` };
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/** Answers a refused WebSocket handshake with a plain HTTP error. */
function refuse(socket: Socket, status: number, text: string): void {
  const body = `${text}\n`;
  // Destroyed once written: a client that never closes its side must not
  // keep the connection (and server shutdown) waiting.
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\n` +
      `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    () => socket.destroy(),
  );
}

export function httpServiceFactory(server: Server): HttpService | null {
  const { config } = server;
  return config.http.port === false && config.https.port === false ? null : new HttpService(server);
}
