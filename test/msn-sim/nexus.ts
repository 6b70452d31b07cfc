// Passport 1.4 ("Tweener") for MSNP8-MSNP11: the nexus that tells clients
// where to log in, and the login server (login2.srf) that trades a password
// plus the notification server's challenge string for a ticket.
//
// The real services were HTTPS; the simulator serves plain HTTP on 127.0.0.1.
// DALogin is given without a scheme, exactly as the nexus did.

import { randomBytes } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { Socket } from 'node:net';
import type { AccountStore } from './accounts.ts';
import type { WebServices } from './services.ts';
import { LOOPBACK, closeServer, listen } from './tcp.ts';

/** Largest SOAP request the services read. */
const MAX_POST = 1024 * 1024;

export const NEXUS_PATH = '/rdr/pprdr.asp';
export const LOGIN_PATH = '/login2.srf';

interface IssuedTicket {
  email: string;
  expires: number;
}

/** Challenge strings given by USR TWN S and tickets given by login2.srf. */
export class PassportAuthority {
  private readonly challenges = new Map<string, number>();
  private readonly tickets = new Map<string, IssuedTicket>();

  constructor(private readonly ticketLifetimeMs: number) {}

  /**
   * The parameters sent in `USR trid TWN S <params>`. `tpf` identifies this
   * challenge so login2.srf can insist on being given one it handed out.
   */
  newChallenge(): string {
    const tpf = randomBytes(16).toString('hex');
    this.challenges.set(tpf, Date.now() + this.ticketLifetimeMs);
    const ct = Math.floor(Date.now() / 1000);
    return `lc=1033,id=507,tw=40,fs=1,ru=http%3A%2F%2Fmessenger%2Emsn%2Ecom,ct=${ct},kpp=1,kv=5,ver=2.1.0173.1,tpf=${tpf}`;
  }

  knowsChallenge(tpf: string | undefined): boolean {
    if (tpf === undefined) return false;
    const expires = this.challenges.get(tpf);
    return expires !== undefined && expires > Date.now();
  }

  issueTicket(email: string): string {
    // Shaped like the real tickets: t=<token>&p=<profile token>.
    const ticket = `t=${randomBytes(24).toString('base64url')}&p=${randomBytes(24).toString('base64url')}`;
    this.tickets.set(ticket, { email: email.toLowerCase(), expires: Date.now() + this.ticketLifetimeMs });
    return ticket;
  }

  /** True if `ticket` was issued to `email` and has not expired. */
  checkTicket(email: string, ticket: string): boolean {
    const issued = this.tickets.get(ticket);
    return issued !== undefined && issued.email === email.toLowerCase() && issued.expires > Date.now();
  }
}

/** Parses the comma-separated key=value list of a Passport1.4 header. */
export function parsePassportParams(header: string): Map<string, string> | null {
  let rest = header.trim();
  if (!rest.startsWith('Passport1.4')) return null;
  // Some documents show the scheme twice ("Passport1.4 Passport1.4 ..."); accept both.
  while (rest.startsWith('Passport1.4')) rest = rest.slice('Passport1.4'.length).trimStart();
  const params = new Map<string, string>();
  for (const part of rest.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) {
      params.set(part.trim(), '');
      continue;
    }
    params.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return params;
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

export interface PassportHttpEvents {
  onLogin?: (email: string, ok: boolean) => void;
}

/** The nexus and login endpoints on one plain-HTTP listener. */
export class PassportHttpServer {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(
    private readonly accounts: AccountStore,
    private readonly authority: PassportAuthority,
    private readonly events: PassportHttpEvents = {},
  ) {}

  get nexusUrl(): string {
    return `http://${LOOPBACK}:${this.port}${NEXUS_PATH}`;
  }

  get loginUrl(): string {
    return `http://${LOOPBACK}:${this.port}${LOGIN_PATH}`;
  }

  async start(port: number): Promise<number> {
    const server = createServer((req, res) => this.handle(req, res));
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    this.server = server;
    this.port = await listen(server, port);
    return this.port;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    if (server) await closeServer(server);
  }

  /** The SOAP web services (MSNP13+), answered on POST. */
  services: WebServices | undefined;

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method === 'POST' && this.services) {
      this.post(path, req, res, this.services);
      return;
    }
    if (req.method !== 'GET') {
      res.writeHead(405, { 'Content-Length': '0' }).end();
      return;
    }
    if (path === NEXUS_PATH) {
      res.writeHead(200, {
        'Cache-Control': 'private',
        'Content-Type': 'text/html',
        'Content-Length': '0',
        PassportURLs: `DARealm=Passport.Net,DALogin=${LOOPBACK}:${this.port}${LOGIN_PATH},DAReg=http://register.passport.net/uixpwiz.srf,Properties=https://register.passport.net/editprof.srf,Privacy=http://www.passport.com/consumer/privacypolicy.asp,GeneralRedir=http://nexusrdr.passport.com/redir.asp,Help=http://memberservices.passport.net/memberservice.srf,ConfigVersion=11`,
      });
      res.end();
      return;
    }
    if (path === LOGIN_PATH) {
      this.handleLogin(req, res);
      return;
    }
    res.writeHead(404, { 'Content-Length': '0' }).end();
  }

  private post(path: string, req: IncomingMessage, res: ServerResponse, services: WebServices): void {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_POST) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      const answer = services.handle(path, Buffer.concat(chunks).toString('utf8'));
      const reply = answer ?? { status: 404, body: 'not found' };
      const body = Buffer.from(reply.body, 'utf8');
      res.writeHead(reply.status, { 'Content-Type': 'text/xml; charset=utf-8', 'Content-Length': String(body.length) });
      res.end(body);
    });
  }

  private handleLogin(req: IncomingMessage, res: ServerResponse): void {
    const params = parsePassportParams(req.headers.authorization ?? '');
    const signIn = params?.get('sign-in');
    const pwd = params?.get('pwd');
    const email = signIn === undefined ? '' : safeDecode(signIn).toLowerCase();
    const password = pwd === undefined ? undefined : safeDecode(pwd);
    const account = this.accounts.get(email);
    const ok =
      params !== null &&
      params.get('OrgVerb') === 'GET' &&
      params.has('OrgURL') &&
      // The challenge string from USR TWN S must be passed through verbatim.
      this.authority.knowsChallenge(params.get('tpf')) &&
      account !== undefined &&
      password === account.password;
    this.events.onLogin?.(email, ok);
    if (!ok) {
      res.writeHead(401, {
        'Content-Type': 'text/html',
        'Content-Length': '0',
        'WWW-Authenticate':
          'Passport1.4 da-status=failed,srealm=Passport.NET,ts=-3,prompt,cburl=http://messenger.msn.com/images/logo102x88.gif,cbtxt=.NET%20Messenger%20Service',
      });
      res.end();
      return;
    }
    const ticket = this.authority.issueTicket(email);
    res.writeHead(200, {
      'Content-Type': 'text/html',
      'Content-Length': '0',
      'Authentication-Info': `Passport1.4 da-status=success,tname=MSPAuth,tname=MSPProf,tname=MSPSec,from-PP='${ticket}',ru=http://messenger.msn.com`,
    });
    res.end();
  }
}
