// `jabberfly check`, as `prosodyctl check`: reads the configuration, the
// certificates, DNS, the ports and the store, and says what is wrong and
// what to do about it. Exit code 1 when anything is a problem (warnings
// alone exit 0), so it can run in a deployment script.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { Resolver } from 'node:dns/promises';
import { join, resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { adminCall } from '../admin/client.ts';
import { adminSocketPath } from '../admin/protocol.ts';
import { servedDomains } from '../config/domains.ts';
import type { Config, Port } from '../config/schema.ts';
import { AccountStore } from '../storage/accounts.ts';
import { LevelBackend, StorageLockedError } from '../storage/level.ts';
import { legacyTransportKeyFile, transportKeyFile } from '../gateway/msn/secret-box.ts';
import { describeStore, openBackend } from '../storage/open.ts';
import { certInfo, type CertInfo, nameCovers } from '../tls/certs.ts';

type Level = 'ok' | 'warn' | 'fail';
interface Finding {
  area: string;
  level: Level;
  text: string;
}

export interface CheckOptions {
  configFile: string | null;
  /** DNS server to ask ("host:port"), instead of the system's. */
  dnsServer?: string;
  print: (line: string) => void;
}

const MARK: Record<Level, string> = { ok: '✓', warn: '!', fail: '✗' };
const DAY = 86_400_000;

export async function runCheck(config: Config, o: CheckOptions): Promise<number> {
  const findings: Finding[] = [];
  const add = (area: string, level: Level, text: string) => findings.push({ area, level, text });

  checkConfig(config, o.configFile, add);
  checkCertificates(config, add);
  await checkDns(config, o.dnsServer, add);
  const running = await adminCall(adminSocketPath(config), { op: 'status' }).catch(() => null);
  await checkPorts(config, running !== null, add);
  // Before the store check: opening the store tightens its files' modes.
  checkTransportKey(config, add);
  await checkStore(config, running, add);

  let area = '';
  for (const f of findings) {
    o.print(`${(f.area === area ? '' : f.area).padEnd(13)}${MARK[f.level]} ${f.text}`);
    area = f.area;
  }
  const problems = findings.filter((f) => f.level === 'fail').length;
  const warnings = findings.filter((f) => f.level === 'warn').length;
  o.print('');
  o.print(
    problems
      ? `${problems} problem${problems > 1 ? 's' : ''}, ${warnings} warning${warnings === 1 ? '' : 's'}`
      : `no problems${warnings ? `, ${warnings} warning${warnings > 1 ? 's' : ''}` : ''}`,
  );
  return problems ? 1 : 0;
}

type Add = (area: string, level: Level, text: string) => void;

function checkConfig(config: Config, file: string | null, add: Add): void {
  add('config', 'ok', file ? `${file} is valid` : 'no configuration file: built-in defaults');
  if (config.domain === 'localhost') {
    add(
      'config',
      'warn',
      "domain is 'localhost': fine to try things, unreachable from other machines (set domain)",
    );
  }
  if (!config.c2s.requireTls)
    add('config', 'warn', 'c2s.requireTls is false: passwords may cross the network unencrypted');
  if (config.msn.enabled && !config.msn.server) {
    add(
      'config',
      'warn',
      'msn.server is unset: the MSN transport cannot log anyone in (see docs/transport.md)',
    );
  }
  if (config.acme.enabled) {
    if (config.acme.challenges.includes('http-01') && config.http.port !== 80 && config.https.port !== 443) {
      add(
        'config',
        'warn',
        `ACME validates on ports 80 (http-01) and 443 (tls-alpn-01); http.port is ${config.http.port} and https.port ${config.https.port}: forward those ports here, or set them`,
      );
    }
  }
}

interface Pair extends CertInfo {
  file: string;
  keyOk: boolean;
}

/** Every pair in tls.dir, as the server loads them. */
function readPairs(dir: string): Map<string, Pair> {
  const pairs = new Map<string, Pair>();
  if (!existsSync(dir)) return pairs;
  for (const f of readdirSync(dir)) {
    if (!f.endsWith('.crt')) continue;
    const name = f.slice(0, -4);
    const keyFile = join(dir, `${name}.key`);
    if (!existsSync(keyFile)) continue;
    const cert = readFileSync(join(dir, f), 'utf8');
    try {
      const info = certInfo(cert);
      let keyOk = true;
      try {
        createSecureContext({ cert, key: readFileSync(keyFile, 'utf8') });
      } catch {
        keyOk = false;
      }
      pairs.set(name, { ...info, file: join(dir, f), keyOk });
    } catch {
      // Not a certificate: reported below as not covering anything.
    }
  }
  return pairs;
}

function checkCertificates(config: Config, add: Add): void {
  const dir = resolve(config.tls.dir);
  const pairs = readPairs(dir);
  if (!pairs.has(config.domain)) {
    if (!pairs.size) {
      add(
        'certificates',
        'warn',
        `none in ${dir} yet: a self-signed one is made at first start (acme.enabled or 'jabberfly cert import' for a real one)`,
      );
      return;
    }
  }
  for (const [name, p] of pairs) {
    if (!p.keyOk)
      add('certificates', 'fail', `${p.file}: the key does not match the certificate (or cannot be read)`);
    const days = Math.floor((p.notAfter.getTime() - Date.now()) / DAY);
    if (days < 0) add('certificates', 'fail', `${name}: expired on ${p.notAfter.toISOString().slice(0, 10)}`);
    else if (days < 14)
      add(
        'certificates',
        'fail',
        `${name}: expires in ${days} days (${p.notAfter.toISOString().slice(0, 10)})`,
      );
    else if (days < 30) add('certificates', 'warn', `${name}: expires in ${days} days`);
  }
  for (const host of servedDomains(config)) {
    // As the server picks one: the exact name, a wildcard, else the main domain's.
    const parent = host.split('.').slice(1).join('.');
    const pair = pairs.get(host) ?? pairs.get(`*.${parent}`) ?? pairs.get(config.domain);
    if (!pair) {
      add(
        'certificates',
        'fail',
        `${host}: no certificate in ${dir} (acme.enabled: true, or 'jabberfly cert import DIR')`,
      );
      continue;
    }
    if (!pair.names.some((n) => nameCovers(n, host))) {
      add(
        'certificates',
        'fail',
        `${host}: ${pair.file} is for ${pair.names.join(', ')}, not ${host}: get one that also names it (ACME does this by itself)`,
      );
      continue;
    }
    const until = pair.notAfter.toISOString().slice(0, 10);
    if (pair.selfSigned) {
      add(
        'certificates',
        'warn',
        `${host}: self-signed (clients warn; other servers with secure s2s refuse it), valid until ${until}`,
      );
    } else
      add(
        'certificates',
        'ok',
        `${host}: issued by ${
          pair.issuer
            .split(', ')
            .find((s) => s.startsWith('O='))
            ?.slice(2) ?? pair.issuer
        }, valid until ${until}`,
      );
  }
}

async function checkDns(config: Config, server: string | undefined, add: Add): Promise<void> {
  if (config.domain === 'localhost') {
    add('dns', 'ok', 'skipped for localhost');
    return;
  }
  const dns = new Resolver({ timeout: 3000, tries: 2 });
  if (server) dns.setServers([server]);
  const address = async (host: string): Promise<string[]> => {
    const [a, aaaa] = await Promise.all([
      dns.resolve4(host).catch(() => []),
      dns.resolve6(host).catch(() => []),
    ]);
    return [...a, ...aaaa];
  };
  const srv = (name: string) => dns.resolveSrv(name).catch((err: NodeJS.ErrnoException) => err);
  const domain = config.domain;
  const services: Array<[string, Port, string]> = [
    ['_xmpp-client._tcp', config.c2s.port, 'clients find the server'],
    ['_xmpp-server._tcp', config.s2s.port, 'other servers find this one'],
  ];
  for (const [prefix, port, why] of services) {
    if (port === false) continue;
    const records = await srv(`${prefix}.${domain}`);
    const want = `${prefix}.${domain}. 3600 IN SRV 0 5 ${port} ${domain}.`;
    if (records instanceof Error) {
      const standard = prefix === '_xmpp-client._tcp' ? 5222 : 5269;
      const level = port === standard ? 'warn' : 'fail';
      add(
        'dns',
        level,
        `no ${prefix}.${domain} SRV record (${records.code ?? records.message}): add '${want}' so ${why}${level === 'warn' ? ` (without it they try ${domain}:${port})` : ''}`,
      );
      continue;
    }
    const wrong = records.filter((r) => r.port !== port);
    if (wrong.length === records.length) {
      add(
        'dns',
        'fail',
        `${prefix}.${domain} points at port ${records.map((r) => r.port).join(', ')} but the server listens on ${port}: change it to '${want}'`,
      );
      continue;
    }
    for (const r of records) {
      if (!(await address(r.name)).length)
        add('dns', 'fail', `${prefix}.${domain} targets ${r.name}, which has no A/AAAA record`);
    }
    add('dns', 'ok', `${prefix}.${domain} → ${records.map((r) => `${r.name}:${r.port}`).join(', ')}`);
  }
  for (const host of servedDomains(config)) {
    const addrs = await address(host);
    if (addrs.length) add('dns', 'ok', `${host} → ${addrs.join(', ')}`);
    else if (host === domain)
      add('dns', 'fail', `${host} has no A/AAAA record: add one with this machine's public address`);
    else {
      const s2s = await srv(`_xmpp-server._tcp.${host}`);
      if (s2s instanceof Error) {
        add(
          'dns',
          'warn',
          `${host} has no A/AAAA or _xmpp-server._tcp SRV record: users of other servers cannot reach it (add a CNAME or A record like ${domain}'s)`,
        );
      } else
        add('dns', 'ok', `_xmpp-server._tcp.${host} → ${s2s.map((r) => `${r.name}:${r.port}`).join(', ')}`);
    }
  }
}

async function checkPorts(config: Config, running: boolean, add: Add): Promise<void> {
  const ports: Array<[string, Port]> = [
    ['c2s.port', config.c2s.port],
    ['c2s.directTlsPort', config.c2s.directTlsPort],
    ['s2s.port', config.s2s.port],
    ['s2s.directTlsPort', config.s2s.directTlsPort],
    ['http.port', config.http.port],
    ['https.port', config.https.port],
  ];
  const host = config.listen[0] ?? '127.0.0.1';
  for (const [key, port] of ports) {
    if (port === false || port === 0) continue;
    if (running) {
      if (await connects(host, port)) add('ports', 'ok', `${key} ${port} answers on ${host}`);
      else
        add(
          'ports',
          'fail',
          `${key} ${port} does not answer on ${host} although the server runs (firewall? listen?)`,
        );
    } else if (await bindable(host, port)) add('ports', 'ok', `${key} ${port} is free`);
    else {
      add(
        'ports',
        'fail',
        `${key} ${port} is in use by another program${port < 1024 ? ' or needs privileges (CAP_NET_BIND_SERVICE)' : ''}: the server could not start`,
      );
    }
  }
}

function connects(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host, port, timeout: 3000 });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(false));
  });
}

function bindable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

async function checkStore(config: Config, running: unknown, add: Add): Promise<void> {
  if (config.storage.backend === 'postgres') return checkDatabase(config, add);
  const path = resolve(config.storage.path);
  if (running) {
    const server = (running as { server?: { pid?: number } }).server;
    add('store', 'ok', `${path} is open in the running server (pid ${server?.pid ?? '?'})`);
  } else if (!existsSync(path)) {
    add('store', 'ok', `${path} does not exist yet: it is made at first start`);
    return;
  } else {
    try {
      const backend = await LevelBackend.open(path, false);
      try {
        let n = 0;
        for await (const _ of new AccountStore(backend).users()) n++;
        add('store', 'ok', `${path} opens and reads (${n} account${n === 1 ? '' : 's'})`);
      } finally {
        await backend.close();
      }
    } catch (err) {
      if (err instanceof StorageLockedError) {
        add(
          'store',
          'fail',
          `${path} is locked by a process that does not answer on the admin socket ${adminSocketPath(config)}`,
        );
      } else add('store', 'fail', `${path} cannot be read: ${(err as Error).message}`);
    }
  }
  const mode = statSync(path).mode & 0o077;
  if (mode)
    add(
      'store',
      'warn',
      `${path} can be read by other users (mode ${(statSync(path).mode & 0o777).toString(8)}): chmod 700 it`,
    );
}

/** PostgreSQL: connects (and brings the schema up to date, as a start would) and reads the accounts. */
async function checkDatabase(config: Config, add: Add): Promise<void> {
  const where = describeStore(config.storage);
  try {
    const backend = await openBackend(config.storage);
    try {
      let n = 0;
      for await (const _ of new AccountStore(backend).users()) n++;
      add('store', 'ok', `${where} opens and reads (${n} account${n === 1 ? '' : 's'})`);
    } finally {
      await backend.close();
    }
  } catch (err) {
    add('store', 'fail', `${where}: ${(err as Error).message}`);
  }
}

/** The MSN transport's key: where it is, that only the server's user reads it, that it is not in the store. */
function checkTransportKey(config: Config, add: Add): void {
  if (!config.msn.enabled) return;
  const file = transportKeyFile(config);
  const legacy = legacyTransportKeyFile(config);
  if (!existsSync(file)) {
    if (existsSync(legacy)) add('msn key', 'ok', `${legacy} (where older versions kept it) is moved to ${file} at the next start`);
    else add('msn key', 'ok', `${file} does not exist yet: it is made at first start`);
    return;
  }
  const mode = statSync(file).mode & 0o777;
  if (mode & 0o077) add('msn key', 'warn', `${file} can be read by other users (mode ${mode.toString(8)}): chmod 600 it`);
  else add('msn key', 'ok', `${file} (0600)`);
  const store = resolve(config.storage.path);
  if (file.startsWith(`${store}/`)) {
    add('msn key', 'warn', `${file} is inside the store folder: a copy of the store opens the MSN passwords; set msn.keyFile elsewhere (e.g. in tls.dir)`);
  }
  if (existsSync(legacy) && legacy !== file) add('msn key', 'warn', `${legacy} also holds a key (older versions kept it there): the next start compares the two`);
}
