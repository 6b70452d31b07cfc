// Loading and validating configuration. The defaults object doubles as the
// schema: a key that is not in it is a typo, and a value must have the same
// type as its default. Errors name the key, so a user can fix the file.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { servedDomains } from './domains.ts';
import { type ComponentConfig, type Config, defaultConfig, MSN_PROTOCOLS, type Privileges } from './schema.ts';

export class ConfigError extends Error {}

type Plain = Record<string, unknown>;

const PORT_KEYS = /(^|\.)(port|directTlsPort|tlsPort)$/;
const POSITIVE_KEYS = /^limits\.|^registration\.perIpPerHour$|^msn\.(avatarMax|fileMax|fileRetention|loginWait|requestTimeout)|^s2s\.(connect|idle)Timeout$|^transport\.reconnectMaxDelay$/;
// The group chat service's limits (its own line: sections are added side by side).
const MUC_POSITIVE_KEYS = /^muc\.(max|historyMax)/;
const ACME_POSITIVE_KEYS = /^acme\.(renewDays|checkInterval)$/;
// The message archive's, stream management's and client state's limits.
const MAM_POSITIVE_KEYS = /^mam\.(expiryInterval|pageSize|maxPageSize)$|^sm\.|^csi\./;
// File upload and TURN limits (their own lines, likewise).
const UPLOAD_POSITIVE_KEYS = /^upload\.(maxFileSize|quotaPerUser|slotLifetime|pendingSlotsPerUser)$|^turn\.credentialLifetime$/;
// Storage pool and cluster timing.
const SCALE_POSITIVE_KEYS = /^storage\.poolSize$|^cluster\.(heartbeat|nodeTimeout)$/;
const NON_NEGATIVE_KEYS = /^upload\.expireAfter$/;
// SASL2/FAST and push limits (rotateAfter may be 0: a fresh token at every login).
const FAST_PUSH_POSITIVE_KEYS = /^fast\.(tokenLifetime|maxClientsPerUser)$|^push\.(maxRegistrationsPerUser|maxPerMinute|timeout|maxTransientErrors)$/;
const FAST_NON_NEGATIVE_KEYS = /^fast\.rotateAfter$/;
// Keys whose values are free-form maps rather than schema objects.
const MAP_KEYS = new Set(['s2s.routes']);
const DOMAIN = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i;
// XEP-0356 permission values per access kind; 'none' everywhere by default.
const PRIVILEGE_VALUES: Record<keyof Privileges, string[]> = {
  roster: ['none', 'get', 'set', 'both'],
  message: ['none', 'outgoing'],
  presence: ['none', 'managed_entity', 'roster'],
};

function isPlain(v: unknown): v is Plain {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function merge(defaults: Plain, given: Plain, path: string): Plain {
  const out: Plain = { ...defaults };
  for (const [key, value] of Object.entries(given)) {
    const name = path ? `${path}.${key}` : key;
    if (!(key in defaults)) throw new ConfigError(`unknown configuration key '${name}'`);
    const def = defaults[key];
    if (name === 'components') {
      out[key] = checkComponents(value);
    } else if (MAP_KEYS.has(name)) {
      if (!isPlain(value) || !Object.values(value).every((v) => typeof v === 'string')) {
        throw new ConfigError(`'${name}' must be a map of strings`);
      }
      out[key] = value;
    } else if (isPlain(def)) {
      if (!isPlain(value)) throw new ConfigError(`'${name}' must be a section (a map of keys)`);
      out[key] = merge(def, value, name);
    } else {
      out[key] = checkValue(name, def, value);
    }
  }
  return out;
}

function checkValue(name: string, def: unknown, value: unknown): unknown {
  if (PORT_KEYS.test(name)) {
    if (value === false) return false;
    if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 65535) {
      throw new ConfigError(`'${name}' must be a port number (0-65535) or false, got ${JSON.stringify(value)}`);
    }
    return value;
  }
  if (Array.isArray(def)) {
    if (def.length > 0 && typeof def[0] === 'number') {
      if (!Array.isArray(value) || value.length === 0 || !value.every((v) => Number.isInteger(v))) {
        throw new ConfigError(`'${name}' must be a non-empty list of whole numbers`);
      }
      return value;
    }
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
      throw new ConfigError(`'${name}' must be a list of strings`);
    }
    return value;
  }
  if (typeof value !== typeof def) {
    throw new ConfigError(`'${name}' must be a ${typeof def}, got ${JSON.stringify(value)}`);
  }
  if (typeof value === 'number' && (POSITIVE_KEYS.test(name) || MUC_POSITIVE_KEYS.test(name) || ACME_POSITIVE_KEYS.test(name) || MAM_POSITIVE_KEYS.test(name) || UPLOAD_POSITIVE_KEYS.test(name) || SCALE_POSITIVE_KEYS.test(name)) && !(value > 0)) {
    throw new ConfigError(`'${name}' must be a positive number`);
  }
  if (typeof value === 'number' && FAST_PUSH_POSITIVE_KEYS.test(name) && !(value > 0)) {
    throw new ConfigError(`'${name}' must be a positive number`);
  }
  if (typeof value === 'number' && (NON_NEGATIVE_KEYS.test(name) || FAST_NON_NEGATIVE_KEYS.test(name)) && !(value >= 0)) {
    throw new ConfigError(`'${name}' must be zero or a positive number`);
  }
  return value;
}

/** `components: { "irc.example.org": { secret, privileges: { roster, message, presence } } }`. */
function checkComponents(value: unknown): Record<string, ComponentConfig> {
  if (!isPlain(value)) throw new ConfigError(`'components' must be a map of component domains`);
  const out: Record<string, ComponentConfig> = {};
  for (const [domain, c] of Object.entries(value)) {
    const name = `components.${domain}`;
    if (!DOMAIN.test(domain)) throw new ConfigError(`'${name}': not a valid domain name`);
    if (!isPlain(c)) throw new ConfigError(`'${name}' must be a section with a secret`);
    for (const key of Object.keys(c)) {
      if (key !== 'secret' && key !== 'privileges') throw new ConfigError(`unknown configuration key '${name}.${key}'`);
    }
    if (typeof c.secret !== 'string' || c.secret === '') throw new ConfigError(`'${name}.secret' must be a non-empty string`);
    const privileges: Privileges = { roster: 'none', message: 'none', presence: 'none' };
    if (c.privileges !== undefined) {
      if (!isPlain(c.privileges)) throw new ConfigError(`'${name}.privileges' must be a section`);
      for (const [access, v] of Object.entries(c.privileges)) {
        const allowed = PRIVILEGE_VALUES[access as keyof Privileges];
        if (!allowed) throw new ConfigError(`unknown configuration key '${name}.privileges.${access}'`);
        if (typeof v !== 'string' || !allowed.includes(v)) {
          throw new ConfigError(`'${name}.privileges.${access}' must be one of ${allowed.join(', ')}`);
        }
        (privileges as unknown as Record<string, string>)[access] = v;
      }
      // XEP-0356 §7.2: roster presence needs read access to the roster.
      if (privileges.presence === 'roster' && privileges.roster !== 'get' && privileges.roster !== 'both') {
        throw new ConfigError(`'${name}.privileges.presence: roster' needs roster get or both`);
      }
    }
    out[domain.toLowerCase()] = { secret: c.secret, privileges };
  }
  return out;
}

/** Validates a config object (from YAML or a test) on top of the defaults. */
export function buildConfig(given: unknown = {}): Config {
  if (given === null || given === undefined) given = {};
  if (!isPlain(given)) throw new ConfigError('the configuration must be a map of keys');
  const cfg = merge(defaultConfig() as unknown as Plain, given, '') as unknown as Config;
  if (!/^[a-z0-9.-]+$/i.test(cfg.domain)) throw new ConfigError(`'domain' is not a valid domain name: ${cfg.domain}`);
  cfg.domain = cfg.domain.toLowerCase();
  cfg.msn.domain = (cfg.msn.domain || `msn.${cfg.domain}`).toLowerCase();
  if (cfg.msn.domain === cfg.domain) throw new ConfigError(`'msn.domain' must differ from 'domain'`);
  cfg.muc.domain = (cfg.muc.domain || `conference.${cfg.domain}`).toLowerCase();
  if (!/^[a-z0-9.-]+$/.test(cfg.muc.domain)) throw new ConfigError(`'muc.domain' is not a valid domain name: ${cfg.muc.domain}`);
  if (cfg.muc.domain === cfg.domain || (cfg.msn.enabled && cfg.muc.domain === cfg.msn.domain)) {
    throw new ConfigError(`'muc.domain' must differ from 'domain' and 'msn.domain'`);
  }
  if (cfg.muc.roomCreation !== 'local' && cfg.muc.roomCreation !== 'anyone') {
    throw new ConfigError(`'muc.roomCreation' must be 'local' or 'anyone'`);
  }
  if (!Number.isInteger(cfg.muc.historyDefault) || cfg.muc.historyDefault < 0 || cfg.muc.historyDefault > cfg.muc.historyMaxStanzas) {
    throw new ConfigError(`'muc.historyDefault' must be a whole number from 0 to muc.historyMaxStanzas`);
  }
  if (cfg.msn.server && !/^[^:\s]+:\d+$/.test(cfg.msn.server)) throw new ConfigError(`'msn.server' must be host:port`);
  for (const key of ['nexus', 'loginUrl', 'servicesUrl'] as const) {
    const v = cfg.msn[key];
    if (v && !/^https?:\/\//.test(v)) throw new ConfigError(`'msn.${key}' must be an http(s) URL`);
  }
  const badVersion = cfg.msn.protocols.find((v) => !MSN_PROTOCOLS.includes(v));
  if (badVersion !== undefined) {
    throw new ConfigError(`'msn.protocols': MSNP${badVersion} is not supported (${MSN_PROTOCOLS.join(', ')} are)`);
  }
  if (new Set(cfg.msn.protocols).size !== cfg.msn.protocols.length) {
    throw new ConfigError(`'msn.protocols' lists a version twice`);
  }
  if (cfg.transport.component && !/^[^:\s]+:\d+$/.test(cfg.transport.component)) {
    throw new ConfigError(`'transport.component' must be host:port`);
  }
  for (const a of cfg.http.trustedProxies) {
    if (!isIP(a)) throw new ConfigError(`'http.trustedProxies' lists IP addresses, not '${a}'`);
  }
  if (!/^https?:\/\//.test(cfg.acme.directory)) throw new ConfigError(`'acme.directory' must be an http(s) URL`);
  for (const c of cfg.acme.challenges) {
    if (c !== 'http-01' && c !== 'tls-alpn-01') {
      throw new ConfigError(`'acme.challenges' may list http-01 and tls-alpn-01, not '${c}'`);
    }
  }
  if (!['always', 'never', 'roster'].includes(cfg.mam.default)) {
    throw new ConfigError(`'mam.default' must be one of always, never, roster`);
  }
  if (!(cfg.mam.retention >= 0)) throw new ConfigError(`'mam.retention' must be 0 (keep forever) or a number of days`);
  checkUpload(cfg);
  checkTurn(cfg);
  checkScale(cfg);
  if (!['debug', 'info', 'warn', 'error', 'silent'].includes(cfg.log.level)) {
    throw new ConfigError(`'log.level' must be one of debug, info, warn, error, silent`);
  }
  // After every service domain is known: a component cannot take one of them.
  const served = servedDomains(cfg);
  for (const domain of Object.keys(cfg.components)) {
    if (served.includes(domain)) throw new ConfigError(`'components.${domain}': the domain is already served by this server`);
  }
  return cfg;
}

const DOMAIN_NAME = /^[a-z0-9.-]+$/i;

function checkUpload(cfg: Config): void {
  const u = cfg.upload;
  u.domain = (u.domain || `upload.${cfg.domain}`).toLowerCase();
  if (!DOMAIN_NAME.test(u.domain)) throw new ConfigError(`'upload.domain' is not a valid domain name: ${u.domain}`);
  if (u.domain === cfg.domain || u.domain === cfg.msn.domain) {
    throw new ConfigError(`'upload.domain' must differ from 'domain' and 'msn.domain'`);
  }
  if (u.url) {
    let url: URL;
    try {
      url = new URL(u.url);
    } catch {
      throw new ConfigError(`'upload.url' must be an http(s) URL`);
    }
    if (!/^https?:$/.test(url.protocol) || url.search || url.hash) {
      throw new ConfigError(`'upload.url' must be an http(s) URL without query or fragment`);
    }
    u.url = u.url.replace(/\/+$/, '');
  }
  for (const key of ['maxFileSize', 'quotaPerUser', 'expireAfter', 'slotLifetime', 'pendingSlotsPerUser'] as const) {
    if (!Number.isSafeInteger(u[key])) throw new ConfigError(`'upload.${key}' must be a whole number`);
  }
  if (u.quotaPerUser < u.maxFileSize) throw new ConfigError(`'upload.quotaPerUser' must be at least 'upload.maxFileSize'`);
}

function checkScale(cfg: Config): void {
  const { storage, cluster } = cfg;
  if (storage.backend !== 'level' && storage.backend !== 'postgres') {
    throw new ConfigError(`'storage.backend' must be 'level' or 'postgres'`);
  }
  // The environment keeps a database password out of the file (and out of 'ps').
  if (!storage.url && process.env.JABBERFLY_STORAGE_URL) storage.url = process.env.JABBERFLY_STORAGE_URL;
  if (storage.backend === 'postgres' && !/^postgres(ql)?:\/\//.test(storage.url)) {
    throw new ConfigError(`'storage.url' must be a postgres:// URL when storage.backend is postgres`);
  }
  if (!Number.isInteger(storage.poolSize)) throw new ConfigError(`'storage.poolSize' must be a whole number`);
  if (cluster.redis) {
    if (!/^rediss?:\/\//.test(cluster.redis)) throw new ConfigError(`'cluster.redis' must be a redis:// URL`);
    if (storage.backend !== 'postgres') {
      throw new ConfigError(`cluster mode (cluster.redis) needs shared storage: set storage.backend to postgres`);
    }
    if (cluster.node && !/^[A-Za-z0-9_.-]{1,64}$/.test(cluster.node)) {
      throw new ConfigError(`'cluster.node' may hold letters, digits, '.', '_' and '-' (at most 64)`);
    }
    if (cluster.nodeTimeout < 2 * cluster.heartbeat) {
      throw new ConfigError(`'cluster.nodeTimeout' must be at least twice 'cluster.heartbeat'`);
    }
  }
}

function checkTurn(cfg: Config): void {
  const t = cfg.turn;
  if (t.host && !DOMAIN_NAME.test(t.host) && !/^[0-9a-f:]+$/i.test(t.host)) {
    throw new ConfigError(`'turn.host' must be a host name or an IP address: ${t.host}`);
  }
  if (t.host && t.port === 0) throw new ConfigError(`'turn.port' must be a port number (1-65535) or false`);
  if (t.host && t.tlsPort === 0) throw new ConfigError(`'turn.tlsPort' must be a port number (1-65535) or false`);
  for (const tr of t.transports) {
    if (tr !== 'udp' && tr !== 'tcp') throw new ConfigError(`'turn.transports' may hold only 'udp' and 'tcp', got '${tr}'`);
  }
  for (const s of t.stun) {
    if (!/^[a-z0-9.-]+(:\d{1,5})?$/i.test(s) || Number(s.split(':')[1] ?? 1) > 65535) {
      throw new ConfigError(`'turn.stun' entries must be host or host:port, got '${s}'`);
    }
  }
  if (!Number.isSafeInteger(t.credentialLifetime)) throw new ConfigError(`'turn.credentialLifetime' must be a whole number`);
}

export function loadConfigFile(file: string): Config {
  const doc = readConfigDocument(file);
  try {
    return buildConfig(doc);
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`${file}: ${err.message}`);
    throw err;
  }
}

/** The file's YAML as given (before defaults), for callers that add to it. */
export function readConfigDocument(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read ${file}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${file} is not valid YAML: ${(err as Error).message}`);
  }
  return doc;
}
