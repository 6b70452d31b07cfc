// The Server owns everything one jabberfly instance needs: config, logger,
// storage, certificates, hosts with their modules, the router and the
// listeners. No globals, so tests can run several servers in one process.
import { AcmeChallenges } from './acme/challenges.ts';
import { StatusSections } from './admin/status-sections.ts';
import { loadServerSecret } from './auth/server-secret.ts';
import { AuthThrottle } from './auth/throttle.ts';
import { C2SListeners } from './c2s/listener.ts';
import { Cluster } from './cluster/cluster.ts';
import { ComponentService } from './component/component-service.ts';
import { servedDomains, uploadsServed } from './config/domains.ts';
import type { Config } from './config/schema.ts';
import type { ServerContext, StoreClass } from './host/context.ts';
import { StoreChangeHub } from './host/store-changes.ts';
import { Host } from './host/host.ts';
import type { ClientSession } from './host/session.ts';
import { Logger } from './log.ts';
import { Router } from './router/router.ts';
import { SessionRegistry } from './router/session-registry.ts';
import type { C2SSession } from './c2s/c2s-session.ts';
import { ResumableSessions } from './c2s/stream-management.ts';
import { serviceFactories, type Service } from './services.ts';
import { AccountStore } from './storage/accounts.ts';
import { openBackend } from './storage/open.ts';
import { trackedBackend } from './storage/tracked-backend.ts';
import type { StorageBackend } from './storage/types.ts';
import { Certificates } from './tls/certs.ts';
import { VERSION } from './version.ts';
import { ParseBudget, type ParserLimits } from './xml/stream-parser.ts';
import { componentHostModules, mucHostModules, uploadHostModules, userHostModules } from './modules/index.ts';

export interface ServerOptions {
  /** Where log lines go (tests capture them); stderr by default. */
  logSink?: (line: string) => void;
}

export class Server implements ServerContext {
  readonly log: Logger;
  readonly hosts = new Map<string, Host>();
  readonly sessions = new SessionRegistry();
  /** Stream-managed client sessions by SM-ID (XEP-0198 resumption). */
  readonly smSessions = new ResumableSessions<C2SSession>();
  readonly router: Router;
  readonly accounts: AccountStore;
  /** Parser limits for authenticated streams, and for streams before authentication. */
  readonly parserLimits: ParserLimits;
  readonly preAuthLimits: ParserLimits;
  /** What all streams' unfinished stanzas hold together. */
  readonly parseBudget: ParseBudget;
  readonly authThrottle: AuthThrottle;
  readonly startedAt = Date.now();
  readonly c2s: C2SListeners;
  readonly statusSections = new StatusSections();
  /** Open ACME challenges, answered by the http and https listeners. */
  readonly acmeChallenges = new AcmeChallenges();
  /** Set in cluster mode (cluster.redis): this process is one node of several. */
  cluster: Cluster | null = null;
  /** How stores that keep entries in memory tell other nodes of changes (the cluster attaches a link). */
  readonly storeChanges: StoreChangeHub;
  private readonly services: Service[] = [];
  private readonly storeCache = new Map<unknown, unknown>();
  private stopping: Promise<void> | null = null;

  private constructor(
    readonly config: Config,
    readonly storage: StorageBackend,
    readonly certs: Certificates,
    log: Logger,
    readonly serverSecret: Buffer,
  ) {
    this.log = log;
    this.storeChanges = new StoreChangeHub(log.child('store-changes'));
    const { limits } = config;
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
    this.parseBudget = new ParseBudget(limits.parserMemoryBudget);
    this.parserLimits = { maxStanzaSize: limits.maxStanzaSize, maxDepth: limits.maxDepth, budget: this.parseBudget };
    this.preAuthLimits = {
      maxStanzaSize: Math.min(limits.maxStanzaSizePreAuth, limits.maxStanzaSize),
      maxDepth: limits.maxDepth,
      budget: this.parseBudget,
    };
    this.c2s = new C2SListeners(this);
    this.statusSections.add('server', () => this.serverStatus());
    this.statusSections.add('sessions', () => this.sessionStatus());
  }

  /** Opens storage, loads certificates and hosts, and starts listening. */
  static async start(config: Config, options: ServerOptions = {}): Promise<Server> {
    const log = new Logger(config.log.level, 'server', options.logSink);
    // Every operation counts toward the durability barrier of the client
    // stanza that caused it (storage/durability.ts).
    const storage = trackedBackend(await openBackend(config.storage, log.child('storage')));
    let server: Server | undefined;
    try {
      const alt = servedDomains(config).slice(1);
      const certs = Certificates.load(config.tls.dir, config.domain, alt, log);
      const secret = await loadServerSecret(storage, 'auth');
      server = new Server(config, storage, certs, log, secret);
      await server.init();
      return server;
    } catch (err) {
      if (server) await server.stop().catch(() => {});
      else await storage.close().catch(() => {});
      throw err;
    }
  }

  private async init(): Promise<void> {
    const main = new Host(this.config.domain, this, { userHost: true });
    this.hosts.set(main.name, main);
    await main.load(userHostModules);
    if (this.config.msn.enabled) {
      const msn = new Host(this.config.msn.domain, this, { userHost: false });
      this.hosts.set(msn.name, msn);
      await msn.load(componentHostModules);
    }
    if (this.config.muc.enabled) {
      const muc = new Host(this.config.muc.domain, this, { userHost: false });
      this.hosts.set(muc.name, muc);
      await muc.load(mucHostModules);
    }
    if (this.config.upload.enabled && !uploadsServed(this.config)) {
      this.log.info('file upload is off: it needs the https listener (https.port) or upload.url');
    } else if (this.config.upload.enabled) {
      const upload = new Host(this.config.upload.domain, this, { userHost: false });
      this.hosts.set(upload.name, upload);
      await upload.load(uploadHostModules);
    }
    // Before any listener: a node accepts clients only once it mirrors the cluster's sessions.
    if (this.config.cluster.redis) this.cluster = await Cluster.start(this);
    await this.c2s.start();
    for (const make of serviceFactories) {
      const service = make(this);
      if (!service) continue;
      this.services.push(service);
      await service.start();
    }
    // Components connected here are claimed in the cluster, so other nodes send their stanzas here.
    const components = this.service(ComponentService);
    if (this.cluster && components) this.cluster.watchComponents(components);
    this.log.info('started', {
      domain: this.config.domain,
      c2s: this.c2s.ports.starttls,
      c2sDirectTls: this.c2s.ports.directTls,
    });
  }

  private serverStatus() {
    return {
      version: VERSION,
      domain: this.config.domain,
      pid: process.pid,
      started: new Date(this.startedAt).toISOString(),
      uptime: formatDuration(Date.now() - this.startedAt),
      rssMiB: Math.round(process.memoryUsage.rss() / 1048576),
    };
  }

  private sessionStatus() {
    let tcp = 0;
    let websocket = 0;
    const list: string[] = [];
    for (const s of this.sessions.all()) {
      if (s.transport === 'tcp') tcp++;
      else websocket++;
      // A small site's list; a big one shows the first hundred.
      if (list.length < 100) list.push(`${s.jid} (${s.transport}${s.secure ? ', tls' : ''}, ${s.ip})`);
    }
    return { total: this.sessions.count, tcp, websocket, list };
  }

  /** One shared instance per store class, so modules and the gateway agree. */
  store<T>(ctor: StoreClass<T>): T {
    let s = this.storeCache.get(ctor) as T | undefined;
    if (!s) {
      s = new ctor(this.storage, this);
      this.storeCache.set(ctor, s);
    }
    return s;
  }

  /** A running service by class (e.g. the HTTP or s2s service), for tests and status. */
  service<T extends Service>(ctor: abstract new (...args: never[]) => T): T | undefined {
    return this.services.find((s) => s instanceof ctor) as T | undefined;
  }

  /** Called by a session that bound a resource. Replaces an older session with the same JID. */
  bindSession(session: ClientSession, host: Host): void {
    const old = this.sessions.add(session);
    if (old && old !== session) {
      old.close('conflict', 'replaced by a new connection with the same resource');
    }
    host.sessionEvents.fire('resource-bind', { session, host });
    this.cluster?.bound(session);
  }

  /** Called once when a bound session ends, however it ended. */
  unbindSession(session: ClientSession, host: Host): void {
    // Modules (presence) see the session before it leaves the registry.
    host.sessionEvents.fire('resource-unbind', { session, host });
    this.sessions.remove(session);
    this.cluster?.unbound(session);
  }

  /** Closes every stream cleanly (system-shutdown), then storage. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const s of [...this.services].reverse()) await s.stop().catch((e) => this.log.error('stop failed', { error: String(e) }));
      await this.c2s.stop();
      // Stanzas closed streams never acknowledged are stored or bounced before storage closes.
      await this.smSessions.drain();
      // After the sessions ended (announced), before the hosts and storage: what still waits for this node is handled here.
      await this.cluster?.stop();
      for (const host of this.hosts.values()) await host.stop();
      await this.storage.close();
      this.log.info('stopped');
    })();
    return this.stopping;
  }
}

/** "3 d 4 h", "2 h 5 min", "42 s": uptime for people. */
function formatDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  const [d, h, m] = [Math.floor(s / 86400), Math.floor((s % 86400) / 3600), Math.floor((s % 3600) / 60)];
  if (d) return `${d} d ${h} h`;
  if (h) return `${h} h ${m} min`;
  if (m) return `${m} min ${s % 60} s`;
  return `${s} s`;
}
