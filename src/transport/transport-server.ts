// `jabberfly transport`: the MSN transport alone, as an XEP-0114 component
// of another server (Prosody, ejabberd, another jabberfly) — PyMSNt's
// original deployment. The composition root of that mode, as `server.ts`
// is of the full server: no local users, no listeners; one host (the
// transport's domain) running the same gateway module, a router whose
// `remote` is the component link (everything not for the transport goes to
// the users' server), and the gateway reaching users' rosters and vCards
// over stanzas (RemoteUserServer: XEP-0356 roster access where that server
// grants it, roster-subsync otherwise, vCard iq gets).
//
// When the link comes up, every registered user is probed, so users who are
// already online get logged in to MSN; when it goes down, every MSN session
// is closed (nobody could hear from them) until it is back.
import { StatusSections } from '../admin/status-sections.ts';
import { AuthThrottle } from '../auth/throttle.ts';
import { loadServerSecret } from '../auth/server-secret.ts';
import { ComponentLink } from '../component/component-client.ts';
import type { Config } from '../config/schema.ts';
import { type MsnGateway, msnGatewayOf } from '../gateway/msn/gateway.ts';
import { msnGatewayModule } from '../gateway/msn/index.ts';
import { RemoteUserServer } from '../gateway/msn/remote-user-server.ts';
import type { ServerContext, StoreClass } from '../host/context.ts';
import { Host } from '../host/host.ts';
import { StoreChangeHub } from '../host/store-changes.ts';
import { Logger } from '../log.ts';
import { Router } from '../router/router.ts';
import { SessionRegistry } from '../router/session-registry.ts';
import { AccountStore } from '../storage/accounts.ts';
import { openBackend } from '../storage/open.ts';
import type { StorageBackend } from '../storage/types.ts';
import { el } from '../xml/element.ts';

export interface TransportOptions {
  /** Where log lines go (tests capture them); stderr by default. */
  logSink?: (line: string) => void;
}

export class TransportServer implements ServerContext {
  readonly log: Logger;
  readonly hosts = new Map<string, Host>();
  readonly sessions = new SessionRegistry();
  readonly router: Router;
  readonly accounts: AccountStore;
  readonly authThrottle: AuthThrottle;
  readonly statusSections = new StatusSections();
  readonly startedAt = Date.now();
  /** Never attached: a standalone transport is one process with its own storage. */
  readonly storeChanges: StoreChangeHub;
  readonly link: ComponentLink;
  private readonly storeCache = new Map<unknown, unknown>();
  private gateway: MsnGateway | undefined;
  private stopping: Promise<void> | null = null;

  private constructor(
    readonly config: Config,
    readonly storage: StorageBackend,
    readonly serverSecret: Buffer,
    log: Logger,
  ) {
    this.log = log;
    this.storeChanges = new StoreChangeHub(log.child('store-changes'));
    const { limits } = config;
    // Nobody logs in here; the interface wants one all the same.
    this.authThrottle = new AuthThrottle(
      {
        freeFailures: limits.authFreeFailures,
        maxDelay: limits.authMaxDelay,
        blockAfter: limits.authBlockAfter,
        blockTime: limits.authBlockTime,
      },
      log.child('auth'),
    );
    this.accounts = new AccountStore(storage);
    this.router = new Router(this.hosts, this.sessions, log.child('router'));
    const [host, port] = splitHostPort(config.transport.component);
    this.link = new ComponentLink(
      {
        host,
        port,
        domain: config.msn.domain,
        secret: config.transport.secret,
        limits: { maxStanzaSize: limits.maxStanzaSize, maxDepth: limits.maxDepth },
        keepaliveInterval: limits.keepaliveInterval,
        reconnectMaxDelay: config.transport.reconnectMaxDelay,
        log: log.child('link'),
      },
      {
        online: () => void this.linkUp(),
        offline: (reason) => void this.linkDown(reason),
        // Everything from the users' server is a peer server's stanza: checked like s2s input.
        stanza: (stanza) => this.router.route(stanza, { kind: 's2s', domains: new Set([config.domain]) }),
      },
    );
    this.router.remote = { send: (stanza) => this.link.send(stanza) };
  }

  /** Opens storage, loads the gateway and connects; rejects if the server refuses the component. */
  static async start(config: Config, options: TransportOptions = {}): Promise<TransportServer> {
    const log = new Logger(config.log.level, 'transport', options.logSink);
    const storage = await openBackend(config.storage, log.child('storage'));
    let t: TransportServer | undefined;
    try {
      const secret = await loadServerSecret(storage, 'auth');
      t = new TransportServer(config, storage, secret, log);
      const host = new Host(config.msn.domain, t, { userHost: false });
      t.hosts.set(host.name, host);
      await host.load([msnGatewayModule((gw) => new RemoteUserServer(gw))]);
      t.gateway = msnGatewayOf(t);
      await t.link.start();
      log.info('transport started', { domain: config.msn.domain, server: config.transport.component, users: config.domain });
      return t;
    } catch (err) {
      if (t) await t.stop().catch(() => {});
      else await storage.close().catch(() => {});
      throw err;
    }
  }

  /** One shared instance per store class. */
  store<T>(ctor: StoreClass<T>): T {
    let s = this.storeCache.get(ctor) as T | undefined;
    if (!s) {
      s = new ctor(this.storage, this);
      this.storeCache.set(ctor, s);
    }
    return s;
  }

  /** Asks every registered user's presence: those online come back and log in to MSN. */
  private async linkUp(): Promise<void> {
    const gw = this.gateway;
    if (!gw) return;
    let probed = 0;
    for await (const user of gw.registrations.users()) {
      gw.send(el('presence', { type: 'probe', from: gw.domain, to: user }));
      probed++;
    }
    this.log.info('probed registered users', { count: probed });
  }

  private async linkDown(reason: string): Promise<void> {
    const gw = this.gateway;
    if (!gw) return;
    this.log.warn('lost the users\' server: closing MSN sessions until it is back', { reason, sessions: gw.sessions.size });
    gw.users.reset();
    await Promise.all([...gw.sessions.values()].map((s) => s.close()));
  }

  /** Logs every user out of MSN, closes the stream, then storage. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const host of this.hosts.values()) await host.stop();
      await this.link.stop();
      await this.storage.close();
      this.log.info('stopped');
    })();
    return this.stopping;
  }
}

function splitHostPort(value: string): [string, number] {
  const i = value.lastIndexOf(':');
  return [value.slice(0, i), Number(value.slice(i + 1))];
}
