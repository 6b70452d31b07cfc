// The configuration's shape and defaults. Every limit lives here with a
// safe default, so the rest of the code never invents one.

export type Port = number | false;

export interface Config {
  domain: string;
  /** Addresses to bind; empty means every interface. */
  listen: string[];
  storage: {
    /** 'level': an embedded LevelDB under `path` (the default); 'postgres': the database at `url`. */
    backend: 'level' | 'postgres';
    path: string;
    /** LevelDB only: fsync every write (PostgreSQL commits are durable by its own settings). */
    sync: boolean;
    /** postgres://user:password@host:port/database (or $JABBERFLY_STORAGE_URL, which keeps the password out of the file). */
    url: string;
    /** Connections the PostgreSQL pool may open. */
    poolSize: number;
  };
  /**
   * Cluster mode: several processes share PostgreSQL storage and use Redis
   * for the session registry and for routing between them (docs/scaling.md).
   * Off while `redis` is empty.
   */
  cluster: {
    /** redis://host:port/db; '' = no cluster (one process). */
    redis: string;
    /** This node's name, unique in the cluster; '' = the host name and process id. */
    node: string;
    /** Seconds between a node's heartbeats. */
    heartbeat: number;
    /** Seconds without a heartbeat after which a node's sessions are dropped from the registry. */
    nodeTimeout: number;
  };
  /** The local admin channel (a Unix socket) the CLI uses while the server runs. */
  admin: { enabled: boolean; socket: string };
  tls: { dir: string };
  c2s: {
    port: Port;
    directTlsPort: Port;
    requireTls: boolean;
    /**
     * Offer SCRAM-*-PLUS on legacy SASL (RFC 6120) too, not only on SASL2.
     * Off by default so that old clients see the mechanisms they always
     * did: those that know only tls-unique (slixmpp before 1.8.5), which
     * TLS 1.3 lacks, would try -PLUS first and log in only after two
     * refusals (reported to the application as failed logins).
     */
    legacySaslPlus: boolean;
  };
  s2s: {
    port: Port;
    directTlsPort: Port;
    secureAuth: boolean;
    routes: Record<string, string>;
    /** Extra CA certificates (PEM files) trusted for s2s certificate checks. */
    trustedCas: string[];
    connectTimeout: number;
    idleTimeout: number;
  };
  http: {
    port: Port;
    allowedOrigins: string[];
    webClient: boolean;
    /** The web client page's name (its title and heading); the domain when empty. */
    siteName: string;
    /**
     * Addresses of reverse proxies (nginx, Caddy) in front of the http
     * port: from them, X-Forwarded-For names the client (limits, logs) and
     * X-Forwarded-Proto/-Host say whether it came over TLS and by which name.
     */
    trustedProxies: string[];
  };
  https: { port: Port };
  registration: { open: boolean; perIpPerHour: number };
  limits: {
    maxStanzaSize: number;
    /** Stanza size limit before the peer has authenticated (c2s, WebSocket, s2s). */
    maxStanzaSizePreAuth: number;
    /** Bytes all streams' unfinished stanzas may hold together (the parse budget). */
    parserMemoryBudget: number;
    maxDepth: number;
    authTimeout: number;
    maxConnectionsPerIp: number;
    /** Bytes waiting to be written to a client above which the senders feeding it stop being read. */
    outboundQueueSize: number;
    /** Bytes waiting to be written to a client above which it is closed at once (policy-violation). */
    outboundQueueMaxSize: number;
    /** Seconds a client may stay over outboundQueueSize before it is closed (policy-violation). */
    slowConsumerTimeout: number;
    /** Concurrent incoming server-to-server connections per address (IPv6: per /64). */
    maxS2SConnectionsPerIp: number;
    /** Seconds a TLS handshake may take (direct TLS, STARTTLS, HTTPS) before the connection is dropped. */
    tlsHandshakeTimeout: number;
    maxAuthFailures: number;
    /** Failed logins (per address, per account, across connections) answered without delay. */
    authFreeFailures: number;
    /** Longest delay, in seconds, before a failed login is answered (it doubles per failure). */
    authMaxDelay: number;
    /** Failed logins after which the address or account is blocked for authBlockTime. */
    authBlockAfter: number;
    /** Seconds a login block lasts; failure counts are forgotten after this long without failures. */
    authBlockTime: number;
    /** Seconds between WebSocket pings; a peer that misses one pong is dropped. */
    websocketPingInterval: number;
    rosterMaxItems: number;
    rosterFieldMaxLength: number;
    vcardMaxSize: number;
    /** Largest decoded vCard PHOTO (avatar) in bytes. */
    vcardPhotoMaxSize: number;
    offlineMaxMessages: number;
    /** Seconds of silence after which a whitespace keepalive is sent to a client. */
    keepaliveInterval: number;
    /** JIDs one user may block (XEP-0191); every list is kept in memory. */
    blocklistMaxItems: number;
    /** PEP nodes one account may have. */
    pepMaxNodes: number;
    /** Items one PEP node may keep (what pubsub#max_items 'max' means). */
    pepMaxItems: number;
    /** Bytes of one PEP item's payload. */
    pepItemMaxSize: number;
    /** Bytes of XEP-0049 private XML one account may store. */
    privateMaxSize: number;
    /** Verified XEP-0115 capability hashes kept in memory. */
    capsCacheSize: number;
  };
  msn: {
    enabled: boolean;
    domain: string;
    server: string;
    nexus: string;
    loginUrl: string;
    allowRemoteUsers: boolean;
    avatarMaxBytes: number;
    avatarMaxPixels: number;
    /** Seconds to wait for a user's server to answer (vCard, XEP-0356 roster requests). */
    requestTimeout: number;
    /** MSNP versions offered at login, best first (e.g. [15] to pin SSO). */
    protocols: number[];
    /** Base URL of the MSNP13+ SOAP services (token service, address book, offline messages); '' = the nexus's origin. */
    servicesUrl: string;
    /** Seconds a request for an MSN contact (vCard) waits for the user's MSN login to finish. */
    loginWait: number;
    /** Largest file (bytes) the transport takes from MSN or passes to MSN over MSNP2P. */
    fileMaxBytes: number;
    /** Hours a file received from MSN stays downloadable when the transport serves it itself. */
    fileRetentionHours: number;
    /** The key that seals stored MSN passwords; '' = transport.key in tls.dir (kept apart from the store). */
    keyFile: string;
  };
  /** Multi-user chat (XEP-0045) at its own domain. */
  muc: {
    enabled: boolean;
    /** The service's domain; `conference.<domain>` when empty. */
    domain: string;
    /** Who may create rooms: users of this server, or anyone (remote users too). */
    roomCreation: 'local' | 'anyone';
    /** Rooms one user may own (as their creator) at once. */
    maxRoomsPerUser: number;
    /** Occupants of one room; a room's own `maxusers` may only lower it. */
    maxOccupants: number;
    /** Messages a room keeps for new occupants; a room's own history length may only lower it. */
    historyMaxStanzas: number;
    /** History length of a new room. */
    historyDefault: number;
    /** Characters in a room subject, name or description. */
    maxTextLength: number;
    /** Characters in a nickname. */
    maxNickLength: number;
  };
  /** The XEP-0114 component listener (loopback only unless `listen` says otherwise). */
  component: { port: Port; listen: string[] };
  /** External components by domain: their shared secret and XEP-0356 privileges. */
  components: Record<string, ComponentConfig>;
  /** `jabberfly transport`: the MSN transport alone, as a component of another server. */
  transport: {
    /** The other server's component port, host:port. */
    component: string;
    secret: string;
    /** Longest wait, in seconds, between attempts to reconnect to that server. */
    reconnectMaxDelay: number;
  };
  /** Certificates from an ACME CA (RFC 8555) for the domain and every service domain. */
  acme: {
    enabled: boolean;
    /** The CA's directory URL. */
    directory: string;
    /** Contact address given to the CA (expiry warnings); optional. */
    email: string;
    /** Extra CA certificate (PEM file) trusted for the directory's HTTPS (a private or test CA). */
    caFile: string;
    /** Challenge types to use, in order of preference: http-01 (http service), tls-alpn-01 (https service). */
    challenges: string[];
    /** Renew when the certificate has fewer days left than this. */
    renewDays: number;
    /** Seconds between checks of the certificate (a failed order is retried within an hour). */
    checkInterval: number;
  };
  /** Message archive (XEP-0313) of every user. */
  mam: {
    enabled: boolean;
    /** What is archived for users who set no preferences (XEP-0441). */
    default: 'always' | 'never' | 'roster';
    /** Days an archived message is kept (fractions allowed); 0 keeps it forever. */
    retention: number;
    /** Seconds between runs of the background expiry. */
    expiryInterval: number;
    /** Results per page when a query asks for no size, and the most one may ask for. */
    pageSize: number;
    maxPageSize: number;
  };
  /** XEP-0363 HTTP file upload at upload.<domain>, served by the https listener. */
  upload: {
    enabled: boolean;
    domain: string;
    /** Folder the uploaded files live in (never served as a folder). */
    path: string;
    /** Public base URL of the upload routes; derived from the domain and https.port when empty. */
    url: string;
    maxFileSize: number;
    /** Bytes one user may have stored (and reserved by open slots) at once. */
    quotaPerUser: number;
    /** Seconds a file is kept; 0 keeps files until their owner's account is deleted. */
    expireAfter: number;
    /** Seconds a slot's PUT URL stays valid. */
    slotLifetime: number;
    /** Slots one user may hold open (requested, not yet uploaded) at once. */
    pendingSlotsPerUser: number;
  };
  /** XEP-0215 external service discovery: STUN/TURN servers for calls. */
  turn: {
    /** TURN (and STUN) server host name; empty turns the TURN entries off. */
    host: string;
    port: Port;
    /** TURN over TLS ('turns') port, or false. */
    tlsPort: Port;
    /** Transports offered for TURN on `port`. */
    transports: string[];
    /** coturn's static-auth-secret (TURN REST API credentials); empty: no TURN, STUN only. */
    secret: string;
    /** Seconds the time-limited TURN credentials stay valid. */
    credentialLifetime: number;
    /** Extra static STUN servers, `host` or `host:port`. */
    stun: string[];
  };
  /** Stream management (XEP-0198) of client streams. */
  sm: {
    /** Seconds a dropped stream-managed session waits to be resumed (a client may ask for less). */
    resumeTimeout: number;
    /** Stanzas kept for one client until it acknowledges them; more ends the stream (resource-constraint). */
    maxUnacked: number;
    /** Sessions of one user waiting to be resumed at once; the oldest give way. */
    maxHibernatingPerUser: number;
  };
  /** Client state indication (XEP-0352). */
  csi: {
    /** Stanzas held back for an inactive client before they are flushed anyway. */
    maxHeld: number;
  };
  /** XEP-0388 SASL2 with XEP-0386 Bind2 and XEP-0484 FAST on client streams (TLS only). */
  sasl2: {
    enabled: boolean;
  };
  /** XEP-0484 FAST tokens: a reconnect in one round trip without the password. */
  fast: {
    enabled: boolean;
    /** Seconds a token stays valid after it is issued. */
    tokenLifetime: number;
    /** Seconds after its issue from which a login with a token gets a fresh one (0: at every login). */
    rotateAfter: number;
    /** Client installations (SASL2 user-agent ids) one user may hold tokens for; the least used go first. */
    maxClientsPerUser: number;
  };
  /** XEP-0357 push notifications to the app servers of users' mobile clients. */
  push: {
    enabled: boolean;
    /** Put the message body in notifications (it passes through the app server and its push service). */
    includeBody: boolean;
    /** Push services one user may register (XEP-0357 enable); more → policy-violation. */
    maxRegistrationsPerUser: number;
    /** Notifications one registration gets per minute at most; more are dropped until the minute is over. */
    maxPerMinute: number;
    /** Seconds to wait for an app server's answer to a notification (no answer counts as a transient error). */
    timeout: number;
    /** Transient errors (wait-type, timeouts) in a row after which a registration is removed. */
    maxTransientErrors: number;
    /**
     * Non-empty: the only push services (app server JIDs or their domains)
     * users may register; empty: any.
     */
    allowedServices: string[];
  };
  log: { level: 'debug' | 'info' | 'warn' | 'error' | 'silent' };
}

/** MSNP versions the transport speaks, best first: the default of `msn.protocols`. */
export const MSN_PROTOCOLS: readonly number[] = [18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8];

/** XEP-0356 permission values, as the XEP names them. */
export interface Privileges {
  roster: 'none' | 'get' | 'set' | 'both';
  message: 'none' | 'outgoing';
  presence: 'none' | 'managed_entity' | 'roster';
}

export interface ComponentConfig {
  secret: string;
  privileges: Privileges;
}

/** Defaults; `msn.domain`, `muc.domain` and `upload.domain` are derived from `domain` when not given. */
export function defaultConfig(): Config {
  return {
    domain: 'localhost',
    listen: [],
    storage: { backend: 'level', path: './storage', sync: false, url: '', poolSize: 10 },
    cluster: { redis: '', node: '', heartbeat: 2, nodeTimeout: 10 },
    // '' = admin.sock inside storage.path (the store's folder, 0700).
    admin: { enabled: true, socket: '' },
    tls: { dir: './certs' },
    c2s: { port: 5222, directTlsPort: 5223, requireTls: true, legacySaslPlus: false },
    s2s: {
      port: 5269,
      directTlsPort: false,
      secureAuth: false,
      routes: {},
      trustedCas: [],
      connectTimeout: 10,
      idleTimeout: 600,
    },
    http: { port: 5280, allowedOrigins: [], webClient: true, siteName: '', trustedProxies: [] },
    https: { port: 5281 },
    registration: { open: false, perIpPerHour: 5 },
    limits: {
      maxStanzaSize: 256 * 1024,
      maxStanzaSizePreAuth: 16 * 1024,
      parserMemoryBudget: 64 * 1024 * 1024,
      maxDepth: 32,
      authTimeout: 30,
      maxConnectionsPerIp: 32,
      maxS2SConnectionsPerIp: 32,
      outboundQueueSize: 1024 * 1024,
      outboundQueueMaxSize: 8 * 1024 * 1024,
      slowConsumerTimeout: 30,
      tlsHandshakeTimeout: 10,
      maxAuthFailures: 3,
      authFreeFailures: 3,
      authMaxDelay: 10,
      authBlockAfter: 10,
      authBlockTime: 900,
      websocketPingInterval: 30,
      rosterMaxItems: 1000,
      rosterFieldMaxLength: 1024,
      vcardMaxSize: 256 * 1024,
      vcardPhotoMaxSize: 128 * 1024,
      offlineMaxMessages: 500,
      keepaliveInterval: 120,
      blocklistMaxItems: 1000,
      pepMaxNodes: 256,
      pepMaxItems: 256,
      pepItemMaxSize: 192 * 1024,
      privateMaxSize: 256 * 1024,
      capsCacheSize: 10000,
    },
    msn: {
      enabled: true,
      domain: '',
      // Unset: Microsoft's servers are gone; the revived networks publish their own.
      server: '',
      nexus: 'https://nexus.passport.com/rdr/pprdr.asp',
      loginUrl: '',
      allowRemoteUsers: false,
      avatarMaxBytes: 1024 * 1024,
      avatarMaxPixels: 4096 * 4096,
      requestTimeout: 30,
      protocols: [...MSN_PROTOCOLS],
      servicesUrl: '',
      loginWait: 30,
      fileMaxBytes: 10 * 1024 * 1024,
      fileRetentionHours: 7 * 24,
      keyFile: '',
    },
    muc: {
      enabled: true,
      domain: '',
      roomCreation: 'local',
      maxRoomsPerUser: 50,
      maxOccupants: 500,
      historyMaxStanzas: 100,
      historyDefault: 20,
      maxTextLength: 1024,
      maxNickLength: 64,
    },
    component: { port: 5347, listen: ['127.0.0.1'] },
    components: {},
    transport: { component: '', secret: '', reconnectMaxDelay: 60 },
    acme: {
      enabled: false,
      directory: 'https://acme-v02.api.letsencrypt.org/directory',
      email: '',
      caFile: '',
      challenges: ['http-01', 'tls-alpn-01'],
      renewDays: 30,
      checkInterval: 12 * 3600,
    },
    mam: {
      enabled: true,
      default: 'always',
      retention: 365,
      expiryInterval: 3600,
      pageSize: 50,
      maxPageSize: 250,
    },
    upload: {
      enabled: true,
      domain: '',
      path: './uploads',
      url: '',
      maxFileSize: 16 * 1024 * 1024,
      quotaPerUser: 256 * 1024 * 1024,
      expireAfter: 7 * 24 * 60 * 60,
      slotLifetime: 300,
      pendingSlotsPerUser: 20,
    },
    turn: {
      host: '',
      port: 3478,
      tlsPort: false,
      transports: ['udp', 'tcp'],
      secret: '',
      credentialLifetime: 24 * 60 * 60,
      stun: [],
    },
    sm: { resumeTimeout: 300, maxUnacked: 500, maxHibernatingPerUser: 5 },
    csi: { maxHeld: 100 },
    sasl2: { enabled: true },
    fast: {
      enabled: true,
      tokenLifetime: 21 * 24 * 60 * 60,
      rotateAfter: 24 * 60 * 60,
      maxClientsPerUser: 32,
    },
    push: {
      enabled: true,
      includeBody: false,
      maxRegistrationsPerUser: 10,
      maxPerMinute: 60,
      timeout: 30,
      maxTransientErrors: 3,
      allowedServices: [],
    },
    log: { level: 'info' },
  };
}
