// The `jabberfly` command line: start the server, manage accounts (through
// the running server's admin socket, or on the store when it is stopped).
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { AdminError } from './admin/account-admin.ts';
import { AdminService } from './admin/admin-service.ts';
import { runAdminCommand } from './cli/admin-commands.ts';
import { banner } from './cli/banner.ts';
import { BackupCommandError, backupCommand, repairCommand, restoreCommand } from './cli/backup.ts';
import { certImport } from './cli/cert-import.ts';
import { runCheck } from './cli/check.ts';
import { MigrateError, migrateStorage } from './cli/migrate-storage.ts';
import { parseWorkers, reportStarted, superviseWorkers, WorkersError, workerConfig, workerIndex } from './cli/workers.ts';
import { PromptError } from './cli/password-prompt.ts';
import { servedDomains } from './config/domains.ts';
import { buildConfig, ConfigError, loadConfigFile } from './config/load.ts';
import type { Config } from './config/schema.ts';
import { insideExecutable } from './runtime/bundled-assets.ts';
import { TransportKeyError } from './gateway/msn/secret-box.ts';
import { S2SService } from './s2s/s2s-service.ts';
import { StorageFolderError } from './storage/level-folder.ts';
import { Server } from './server.ts';
import { certInfo } from './tls/certs.ts';
import { runTransport } from './transport/cli.ts';
import { VERSION } from './version.ts';
import { HttpService } from './websocket/http-service.ts';

const HELP = `jabberfly — an XMPP server with a built-in MSN transport

Usage:
  jabberfly start                     run the server
  jabberfly start --workers N         run N worker processes sharing the ports (cluster mode on one
                                      machine: needs cluster.redis and PostgreSQL; docs/scaling.md)
  jabberfly adduser JID               create an account (asks for the password twice, hidden)
  jabberfly passwd JID                change an account's password (its sessions are disconnected)
  jabberfly deluser JID               delete an account and all its data
  jabberfly users                     list the accounts (and how many sessions each has)
  jabberfly status                    uptime, sessions, transport (exit 3 when not running)
  jabberfly kick JID                  disconnect a user (bare JID) or one session (full JID)
  jabberfly check                     check configuration, certificates, DNS, ports and store (exit 1 on problems)
  jabberfly cert import DIR...        take certificates from certbot (e.g. /etc/letsencrypt/live) or another ACME client
  jabberfly migrate-storage --from level --to postgres
                                      copy every store to the other backend and verify the counts
                                      (server stopped; LevelDB at storage.path or --path,
                                      PostgreSQL at storage.url or --url)
  jabberfly backup FILE                write every store to FILE (FILE.gz: compressed; server stopped for LevelDB)
  jabberfly restore FILE              load a backup into an empty store and verify the counts
  jabberfly repair-storage            rebuild a damaged LevelDB store's metadata from its files
  jabberfly transport --component HOST:PORT --secret S --domain msn.example.org
                                      run only the MSN transport, as an XEP-0114 component of
                                      another server (Prosody, ejabberd); see docs/transport.md
  jabberfly --help                    this text

Account commands work while the server runs (through its admin socket) and
when it is stopped (on the store directly).

Options:
  --config FILE, -c FILE   configuration (default: $JABBERFLY_CONFIG, else ./jabberfly.yaml when present,
                           else built-in defaults)
  --password PW, -p PW     for adduser/passwd in scripts (visible to other local users in 'ps': prefer stdin)
  --json                   users/status as JSON
  --dns HOST:PORT          check: ask this DNS server instead of the system's
  --component HOST:PORT    transport: the server's component port (or transport.component)
  --secret S               transport: the component secret (or $JABBERFLY_COMPONENT_SECRET,
                           or transport.secret: both keep it out of 'ps')
  --domain D               transport: its domain, e.g. msn.example.org (or msn.domain)
  --from, --to KIND        migrate-storage: level or postgres
  --path DIR, --url URL    migrate-storage: the LevelDB folder and the postgres:// URL`;

class CliError extends Error {}

/** --config, else $JABBERFLY_CONFIG (service managers, containers), else ./jabberfly.yaml when present. */
function configFile(given: string | undefined): string | null {
  if (given) return given;
  if (process.env.JABBERFLY_CONFIG) return process.env.JABBERFLY_CONFIG;
  return existsSync('jabberfly.yaml') ? 'jabberfly.yaml' : null;
}

function loadConfig(file: string | null): Config {
  return file ? loadConfigFile(file) : buildConfig({});
}

/** How the person at the terminal runs us, for the hints we print. */
function cliName(): string {
  // The single executable, as it was typed ("./jabberfly", "/usr/local/bin/jabberfly").
  if (insideExecutable()) return process.argv0;
  if (process.env.npm_lifecycle_event || process.env.npm_execpath) return 'npx jabberfly';
  return 'jabberfly';
}

async function main(argv: string[]): Promise<number> {
  // What jabberfly writes is its own: the store (SCRAM keys), keys,
  // certificates, backups, uploads. 0600/0700 whatever the login's umask.
  process.umask(0o077);
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      password: { type: 'string', short: 'p' },
      json: { type: 'boolean' },
      dns: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
      component: { type: 'string' },
      secret: { type: 'string' },
      domain: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      path: { type: 'string' },
      url: { type: 'string' },
      workers: { type: 'string' },
    },
  });
  const [command, arg, ...rest] = positionals;
  if (values.version) {
    console.log(VERSION);
    return 0;
  }
  if (values.help || !command || command === 'help') {
    console.log(HELP);
    return command || values.help ? 0 : 1;
  }
  const file = configFile(values.config);
  if (command === 'check') {
    // A configuration that does not load is check's first finding, not a crash.
    let checked: Config;
    try {
      checked = loadConfig(file);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      console.log(`config       ✗ ${err.message}\n\n1 problem`);
      return 1;
    }
    return runCheck(checked, { configFile: file, dnsServer: values.dns, print: (line) => console.log(line) });
  }
  const config = loadConfig(file);
  switch (command) {
    case 'start': {
      // A worker of `start --workers N` (its argv is the supervisor's): one node of the cluster.
      const index = workerIndex();
      if (index !== null) return start(workerConfig(config, index), file, values.config ?? null, index);
      const workers = values.workers === undefined ? 1 : parseWorkers(values.workers, config);
      if (workers > 1) return superviseWorkers(config, workers);
      return start(config, file, values.config ?? null);
    }
    case 'transport':
      return runTransport(file, { component: values.component, secret: values.secret, domain: values.domain });
    case 'adduser':
    case 'passwd':
    case 'deluser':
    case 'users':
    case 'status':
    case 'kick':
      return runAdminCommand(command, arg, config, {
        password: values.password,
        json: values.json,
        print: (line) => console.log(line),
      });
    case 'migrate-storage':
      return migrateStorage(config, { from: values.from, to: values.to, path: values.path, url: values.url, print: (line) => console.log(line) });
    case 'backup':
      return backupCommand(config, arg, (line) => console.log(line));
    case 'restore':
      return restoreCommand(config, arg, (line) => console.log(line));
    case 'repair-storage':
      return repairCommand(config, (line) => console.log(line));
    case 'cert':
      if (arg !== 'import') throw new CliError(`unknown cert command '${arg ?? ''}' (jabberfly cert import DIR)`);
      return certImport(config, rest, (line) => console.log(line));
    default:
      throw new CliError(`unknown command '${command}' (see jabberfly --help)`);
  }
}

async function start(config: Config, file: string | null, flag: string | null, worker: number | null = null): Promise<number> {
  const server = await Server.start(config);
  if (worker !== null) reportStarted();
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    server.log.info('shutting down', { signal });
    server.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        // Exits non-zero so a supervisor notices; the log says why.
        server.log.error('stopping failed', { error: String((err as Error)?.stack ?? err) });
        process.exit(1);
      },
    );
  };
  // SIGHUP picks up certificates dropped into tls.dir, as Prosody's reload does.
  process.on('SIGHUP', () => server.certs.reload());
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Last-resort safety net; the causes are bugs to fix, so both log at
  // error level with the stack. A rejected promise nobody awaited has
  // already unwound: one user's request failed, everyone else's
  // sessions (and their MSN logins) keep running. A synchronous throw
  // that reached the top may have left state half-updated, so the
  // server stops cleanly instead (streams get system-shutdown, storage
  // is closed) and exits non-zero for the supervisor to restart it.
  process.on('unhandledRejection', (reason) => {
    server.log.error('unhandled rejection (bug: please report)', { error: String((reason as Error)?.stack ?? reason) });
  });
  process.on('uncaughtException', (err) => {
    server.log.error('uncaught exception (bug: please report), shutting down', { error: String(err?.stack ?? err) });
    if (stopping) process.exit(1);
    stopping = true;
    server.stop().finally(() => process.exit(1));
  });
  // Workers of `--workers N` share one terminal: the first one's banner speaks for all.
  if (config.log.level !== 'silent' && (worker === null || worker === 1)) process.stdout.write(await startBanner(server, file, flag));
  return -1; // keep running
}

async function startBanner(server: Server, file: string | null, flag: string | null): Promise<string> {
  const { config } = server;
  let accounts = 0;
  for await (const _ of server.accounts.users()) accounts++;
  const http = server.service(HttpService);
  const main = server.certs.pairs.get(config.domain);
  const others = servedDomains(config).filter((d) => d !== config.domain && d !== config.msn.domain);
  return banner({
    version: VERSION,
    domain: config.domain,
    listen: config.listen,
    c2s: server.c2s.ports,
    s2s: server.service(S2SService)?.ports ?? null,
    web: http
      ? { ...http.ports, client: config.http.webClient, requireTls: config.c2s.requireTls }
      : null,
    msn: { enabled: config.msn.enabled, domain: config.msn.domain, server: config.msn.server },
    services: others,
    configFile: file,
    configFlag: flag,
    certDir: resolve(config.tls.dir),
    selfSigned: main ? certInfo(main.cert).selfSigned : false,
    storePath: resolve(config.storage.path),
    adminSocket: server.service(AdminService)?.listening ?? null,
    accounts,
    cli: cliName(),
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err) => {
    const known =
      err instanceof CliError ||
      err instanceof ConfigError ||
      err instanceof AdminError ||
      err instanceof PromptError ||
      err instanceof MigrateError ||
      err instanceof WorkersError ||
      err instanceof BackupCommandError ||
      err instanceof StorageFolderError ||
      err instanceof TransportKeyError ||
      (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    console.error(`jabberfly: ${known ? (err as Error).message : ((err as Error).message ?? err)}`);
    process.exit(1);
  },
);
