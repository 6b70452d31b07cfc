// `jabberfly transport`: builds the configuration of the component mode
// from the file (if any) and the flags, checks what that mode needs, and
// runs the TransportServer until SIGTERM/SIGINT.
//
//   jabberfly transport --component 127.0.0.1:5347 --secret S --domain msn.example.org
//
// `--domain` is the transport's domain (msn.domain); the users it serves
// as its own are on the server's domain (`domain`), which defaults to the
// transport's domain without its first label (msn.example.org →
// example.org). The secret may also come from $JABBERFLY_COMPONENT_SECRET
// or the file (`transport.secret`), which keeps it out of `ps`.
import { buildConfig, ConfigError, readConfigDocument } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { TransportServer } from './transport-server.ts';

export interface TransportFlags {
  component?: string;
  secret?: string;
  domain?: string;
}

type Plain = Record<string, unknown>;

const isPlain = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The component mode's configuration: the file, then the flags on top. */
export function transportConfig(file: string | null, flags: TransportFlags, env = process.env): Config {
  const doc = file ? readConfigDocument(file) : {};
  if (doc !== null && doc !== undefined && !isPlain(doc)) throw new ConfigError('the configuration must be a map of keys');
  const given: Plain = { ...(doc ?? {}) };
  const section = (name: string): Plain => {
    const s = isPlain(given[name]) ? { ...(given[name] as Plain) } : {};
    given[name] = s;
    return s;
  };
  if (flags.domain) section('msn').domain = flags.domain;
  if (flags.component) section('transport').component = flags.component;
  const secret = flags.secret ?? env.JABBERFLY_COMPONENT_SECRET;
  if (secret) section('transport').secret = secret;
  const msnDomain = (given.msn as Plain | undefined)?.domain;
  if (given.domain === undefined) {
    if (typeof msnDomain !== 'string' || !msnDomain.includes('.')) {
      throw new ConfigError("give the transport's domain: --domain msn.example.org (or msn.domain)");
    }
    given.domain = msnDomain.slice(msnDomain.indexOf('.') + 1);
  }
  // The transport is the whole point of this mode.
  section('msn').enabled = true;
  const config = buildConfig(given);
  if (!config.transport.component) {
    throw new ConfigError("give the server's component port: --component HOST:PORT (or transport.component)");
  }
  if (!config.transport.secret) {
    throw new ConfigError('give the component secret: --secret, $JABBERFLY_COMPONENT_SECRET or transport.secret');
  }
  if (!config.msn.server) {
    throw new ConfigError("set msn.server (the MSN network's dispatch server, host:port) in the configuration");
  }
  return config;
}

/** Runs until a signal stops it; returns -1 (keep the process running). */
export async function runTransport(file: string | null, flags: TransportFlags): Promise<number> {
  const config = transportConfig(file, flags);
  const transport = await TransportServer.start(config);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    transport.log.info('shutting down', { signal });
    transport.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('unhandledRejection', (reason) => {
    transport.log.error('unhandled rejection (bug: please report)', { error: String((reason as Error)?.stack ?? reason) });
  });
  return -1;
}
