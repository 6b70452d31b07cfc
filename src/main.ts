// The `jabberfly` command line: start the server, manage accounts.
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { buildConfig, ConfigError, loadConfigFile } from './config/load.ts';
import type { Config } from './config/schema.ts';
import { Jid } from './jid/jid.ts';
import { Server } from './server.ts';
import { LevelBackend } from './storage/level.ts';
import { AccountStore } from './storage/accounts.ts';
import { deleteUserData } from './storage/user-data.ts';

const HELP = `jabberfly — an XMPP server with a built-in MSN transport

Usage:
  jabberfly start [--config FILE]              run the server (default config: ./jabberfly.yaml if present)
  jabberfly adduser JID [--password PW]        create an account (password read from stdin if not given)
  jabberfly passwd JID [--password PW]         change an account's password
  jabberfly deluser JID                        delete an account and all its data
  jabberfly --help                             this text

Every command takes --config FILE.`;

class CliError extends Error {}

function loadConfig(file: string | undefined): Config {
  if (file) return loadConfigFile(file);
  if (existsSync('jabberfly.yaml')) return loadConfigFile('jabberfly.yaml');
  return buildConfig({});
}

async function readPassword(given: string | undefined): Promise<string> {
  if (given !== undefined) return given;
  if (process.stdin.isTTY) process.stderr.write('Password: ');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) {
    chunks.push(c as Buffer);
    if (Buffer.concat(chunks).includes(10)) break;
  }
  const pw = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
  if (!pw) throw new CliError('no password given (use --password or write it to stdin)');
  return pw;
}

function userOf(jidText: string | undefined, config: Config): string {
  if (!jidText) throw new CliError(`a JID is required, e.g. alice@${config.domain}`);
  let jid: Jid;
  try {
    jid = Jid.parse(jidText.includes('@') ? jidText : `${jidText}@${config.domain}`);
  } catch (err) {
    throw new CliError(`invalid JID '${jidText}': ${(err as Error).message}`);
  }
  if (jid.domain !== config.domain) throw new CliError(`${jid.bare} is not on this server's domain (${config.domain})`);
  if (!jid.local || jid.resource) throw new CliError(`'${jidText}' must be a bare JID like user@${config.domain}`);
  return jid.local;
}

async function withAccounts<T>(config: Config, work: (a: AccountStore, b: LevelBackend) => Promise<T>): Promise<T> {
  const backend = await LevelBackend.open(config.storage.path, true);
  try {
    return await work(new AccountStore(backend), backend);
  } finally {
    await backend.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      password: { type: 'string', short: 'p' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, arg] = positionals;
  if (values.help || !command || command === 'help') {
    console.log(HELP);
    return command || values.help ? 0 : 1;
  }
  const config = loadConfig(values.config);
  switch (command) {
    case 'start': {
      const server = await Server.start(config);
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        server.log.info('shutting down', { signal });
        server.stop().then(
          () => process.exit(0),
          () => process.exit(1),
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
      return -1; // keep running
    }
    case 'adduser': {
      const user = userOf(arg, config);
      const password = await readPassword(values.password);
      await withAccounts(config, async (accounts) => {
        if (await accounts.exists(user)) throw new CliError(`${user}@${config.domain} already exists`);
        await accounts.setPassword(user, password);
      });
      console.log(`created ${user}@${config.domain}`);
      return 0;
    }
    case 'passwd': {
      const user = userOf(arg, config);
      const password = await readPassword(values.password);
      await withAccounts(config, async (accounts) => {
        if (!(await accounts.exists(user))) throw new CliError(`${user}@${config.domain} does not exist`);
        await accounts.setPassword(user, password);
      });
      console.log(`password changed for ${user}@${config.domain}`);
      return 0;
    }
    case 'deluser': {
      const user = userOf(arg, config);
      await withAccounts(config, async (accounts, backend) => {
        if (!(await accounts.exists(user))) throw new CliError(`${user}@${config.domain} does not exist`);
        await deleteUserData(backend, `${user}@${config.domain}`);
        await accounts.delete(user);
      });
      console.log(`deleted ${user}@${config.domain}`);
      return 0;
    }
    default:
      throw new CliError(`unknown command '${command}' (see jabberfly --help)`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err) => {
    if (err instanceof CliError || err instanceof ConfigError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`jabberfly: ${(err as Error).message}`);
    } else {
      console.error(`jabberfly: ${(err as Error).message ?? err}`);
    }
    process.exit(1);
  },
);
