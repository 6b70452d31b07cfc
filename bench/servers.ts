// The servers under test, each a child process with its own temp folder,
// certificates and loopback port: jabberfly through its real command
// (bin/jabberfly.js start --config FILE), Debian's Prosody 0.12 run as the
// `prosody` user and Debian's ejabberd run as the `ejabberd` user. All get
// the same users (same password) before the load starts.
import { generateSelfSigned } from '../src/tls/certs.ts';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { streamHeader } from './client.ts';

export const DOMAIN = 'bench.test';
export const PASSWORD = 'bench-password';
const BIN = fileURLToPath(new URL('../bin/jabberfly.js', import.meta.url));

/** Every child process the bench started, so they can be killed on any exit path. */
export const children = new Set<ChildProcess>();

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** A self-signed EC P-256 certificate for the bench domain, shared by both servers. */
export function makeCertificate(dir: string): { crt: string; key: string } {
  mkdirSync(dir, { recursive: true });
  const crt = join(dir, `${DOMAIN}.crt`);
  const key = join(dir, `${DOMAIN}.key`);
  generateSelfSigned(crt, key, [DOMAIN], 7);
  return { crt, key };
}

/** Resolves once the port answers an XMPP stream header with stream features. */
export async function waitReady(port: number, child: ChildProcess, output: () => string, ms = 60000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`server exited (${child.exitCode ?? child.signalCode}):\n${output().slice(-3000)}`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const s = netConnect({ host: '127.0.0.1', port });
      let buf = '';
      const done = (v: boolean) => {
        clearTimeout(t);
        s.destroy();
        resolve(v);
      };
      const t = setTimeout(() => done(false), 1000);
      s.on('connect', () => s.write(streamHeader(DOMAIN)));
      s.on('data', (d) => {
        buf += d.toString();
        if (buf.includes('features')) done(true);
      });
      s.on('error', () => done(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`server did not answer on port ${port}:\n${output().slice(-3000)}`);
}

async function stopChild(child: ChildProcess | null): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) {
    if (child) children.delete(child);
    return;
  }
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
  await exited;
  clearTimeout(timer);
  children.delete(child);
}

export interface BenchServer {
  readonly name: 'jabberfly' | 'prosody' | 'ejabberd';
  readonly label: string;
  readonly port: number;
  readonly pid: number;
  /** Creates the users (server stopped). */
  prepare(users: string[]): Promise<void>;
  start(options?: { cpuProfDir?: string }): Promise<void>;
  stop(): Promise<void>;
  output(): string;
}

/** What both servers share: the child process, the tail of its output, start-up and stop. */
abstract class ServerProcess {
  abstract readonly port: number;
  protected child: ChildProcess | null = null;
  private out = '';

  get pid(): number {
    return this.child?.pid ?? 0;
  }

  output(): string {
    return this.out;
  }

  /** Tracks a started server, keeps the tail of its output, waits until it listens. */
  protected async attach(child: ChildProcess): Promise<void> {
    this.out = '';
    children.add(child);
    this.child = child;
    const onData = (d: Buffer) => {
      this.out += d.toString();
      if (this.out.length > 200_000) this.out = this.out.slice(-100_000);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    await waitReady(this.port, child, () => this.out);
  }

  async stop(): Promise<void> {
    await stopChild(this.child);
    this.child = null;
  }
}

/** Gives a folder tree to a system user (Prosody and ejabberd refuse to run as root). */
function chownTree(path: string, uid: number, gid: number): void {
  chownSync(path, uid, gid);
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    const p = join(path, entry.name);
    if (entry.isDirectory()) chownTree(p, uid, gid);
    else chownSync(p, uid, gid);
  }
}

export class Jabberfly extends ServerProcess implements BenchServer {
  readonly name = 'jabberfly' as const;
  readonly label: string;
  private readonly configFile: string;

  constructor(
    private readonly dir: string,
    readonly port: number,
    cert: { crt: string; key: string },
    options: { msn?: { server: string; nexus: string; loginUrl?: string }; archive?: boolean } = {},
  ) {
    super();
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    this.label = `jabberfly ${pkg.version}${options.archive ? ' (archiving)' : ''}`;
    mkdirSync(join(dir, 'certs'), { recursive: true });
    copyFileSync(cert.crt, join(dir, 'certs', `${DOMAIN}.crt`));
    copyFileSync(cert.key, join(dir, 'certs', `${DOMAIN}.key`));
    this.configFile = join(dir, 'jabberfly.yaml');
    const msn = options.msn
      ? `msn:\n  enabled: true\n  server: "${options.msn.server}"\n  nexus: "${options.msn.nexus}"\n${
          options.msn.loginUrl ? `  loginUrl: "${options.msn.loginUrl}"\n` : ''
        }`
      : 'msn:\n  enabled: false\n';
    writeFileSync(
      this.configFile,
      `# Written by bench/servers.ts
domain: ${DOMAIN}
listen: ["127.0.0.1"]
storage:
  path: "${join(dir, 'storage')}"
  sync: false
tls:
  dir: "${join(dir, 'certs')}"
c2s:
  port: ${port}
  directTlsPort: false
  requireTls: true
s2s:
  port: false
http:
  port: false
https:
  port: false
limits:
  maxConnectionsPerIp: 1000000
  authTimeout: 120
mam:
  enabled: ${options.archive ? 'true' : 'false'}
${msn}log:
  level: warn
`,
    );
  }

  /** Writes accounts straight into the storage (same SCRAM record for every user: one password, one salt). */
  async prepare(users: string[]): Promise<void> {
    const { LevelBackend } = await import('../src/storage/level.ts');
    const { deriveCredentials, SCRAM_HASHES } = await import('../src/auth/scram.ts');
    const backend = await LevelBackend.open(join(this.dir, 'storage'));
    try {
      const scram: Record<string, unknown> = {};
      for (const h of SCRAM_HASHES) scram[h] = deriveCredentials(h, PASSWORD);
      const kv = backend.keyValue<unknown>('accounts');
      const created = new Date().toISOString();
      for (let i = 0; i < users.length; i += 500) {
        await Promise.all(users.slice(i, i + 500).map((u) => kv.set(u, { scram, created })));
      }
    } finally {
      await backend.close();
    }
  }

  async start(options: { cpuProfDir?: string } = {}): Promise<void> {
    const args = options.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`] : [];
    const child = spawn(process.execPath, [...args, BIN, 'start', '--config', this.configFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    await this.attach(child);
  }
}

export class Prosody extends ServerProcess implements BenchServer {
  readonly name = 'prosody' as const;
  readonly label: string;
  private readonly configFile: string;
  private readonly uid: number;
  private readonly gid: number;

  constructor(
    private readonly dir: string,
    readonly port: number,
    cert: { crt: string; key: string },
    /** Turn off Nagle's algorithm and write opportunistically (Prosody's defaults keep Nagle on). */
    tuned = false,
    /** Load mod_mam (with its default storage, as Debian ships it). */
    archive = false,
  ) {
    super();
    this.uid = Number(execFileSync('id', ['-u', 'prosody']).toString().trim());
    this.gid = Number(execFileSync('id', ['-g', 'prosody']).toString().trim());
    const version =
      /^ii\s+prosody\s+(\S+)/m.exec(execFileSync('dpkg', ['-l', 'prosody']).toString())?.[1] ?? '?';
    this.label = `Prosody ${version}${tuned ? ' (nagle off)' : ''}${archive ? ' (mod_mam)' : ''}`;
    mkdirSync(join(dir, 'data'), { recursive: true });
    mkdirSync(join(dir, 'certs'), { recursive: true });
    const crt = join(dir, 'certs', `${DOMAIN}.crt`);
    const key = join(dir, 'certs', `${DOMAIN}.key`);
    copyFileSync(cert.crt, crt);
    copyFileSync(cert.key, key);
    this.configFile = join(dir, 'prosody.cfg.lua');
    // The module set matches what jabberfly serves: roster, presence,
    // messages, offline storage, carbons, blocking, vCard, ping, disco,
    // version, time, last activity, group chat (mod_muc); no s2s, no HTTP;
    // MAM only for the archiving figure. Logging at warn, like jabberfly's bench config.
    writeFileSync(
      this.configFile,
      `-- Written by bench/servers.ts
pidfile = "${join(dir, 'prosody.pid')}"
data_path = "${join(dir, 'data')}"
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
use_ipv6 = false
network_backend = "epoll"
${tuned ? 'network_settings = { nagle = false; opportunistic_writes = true }\n' : ''}c2s_ports = { ${port} }
c2s_direct_tls_ports = { }
s2s_ports = { }
http_ports = { }
https_ports = { }
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping"; "vcard"; "carbons"; "offline"; "blocklist"; "version"; "time"; "lastactivity"; "pep"${archive ? '; "mam"' : ''} }
modules_disabled = { "s2s"; "s2s_auth_certs"; "admin_shell"; "admin_socket"; "http"${archive ? '' : '; "mam"'} }
authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = true
log = { { levels = { min = "warn" }, to = "console" }${
        process.env.BENCH_PROSODY_DEBUG
          ? `; { levels = { min = "debug" }, to = "file", filename = "${join(dir, 'prosody.log')}" }`
          : ''
      } }
ssl = { certificate = "${crt}"; key = "${key}"; }
VirtualHost "${DOMAIN}"
-- Group chat, as jabberfly serves it at conference.<domain> (defaults: 20 messages of history, rooms locked until configured).
Component "conference.${DOMAIN}" "muc"
`,
    );
    chownTree(dir, this.uid, this.gid);
  }

  private asProsody() {
    return { uid: this.uid, gid: this.gid, env: { ...process.env, HOME: this.dir }, stdio: 'pipe' as const };
  }

  /**
   * Registers one user with `prosodyctl register`, then copies its account
   * file (SCRAM-SHA-1 keys, salt, iteration count) to every other user: the
   * same record prosodyctl would write for the same password and salt, in a
   * fraction of the time (one prosodyctl run costs about half a second).
   */
  async prepare(users: string[]): Promise<void> {
    const [first, ...rest] = users;
    execFileSync(
      'prosodyctl',
      ['--config', this.configFile, 'register', first!, DOMAIN, PASSWORD],
      this.asProsody(),
    );
    const accounts = join(this.dir, 'data', encodeURIComponent(DOMAIN).replace(/\./g, '%2e'), 'accounts');
    const template = readFileSync(join(accounts, `${first}.dat`));
    for (const u of rest) {
      if (!/^[a-z0-9]+$/.test(u)) throw new Error(`user names must be plain alphanumerics: ${u}`);
      const file = join(accounts, `${u}.dat`);
      writeFileSync(file, template);
      chownSync(file, this.uid, this.gid);
    }
  }

  async start(): Promise<void> {
    const child = spawn('prosody', ['-F', '--config', this.configFile], {
      ...this.asProsody(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    await this.attach(child);
  }
}

/** Whether Debian's ejabberd package is installed (the bench compares against it only then). */
export function ejabberdInstalled(): boolean {
  return ejabberdVersion() !== null;
}

/** The installed ejabberd package's version ("23.01-1"), or null. */
function ejabberdVersion(): string | null {
  try {
    const list = execFileSync('dpkg', ['-l', 'ejabberd'], { stdio: 'pipe' }).toString();
    return /^ii\s+ejabberd\s+(\S+)/m.exec(list)?.[1] ?? null;
  } catch {
    return null;
  }
}

/**
 * Start time of a live process (field 22 of /proc/<pid>/stat): with the PID,
 * it names one process for sure. Null once it has exited (zombies included).
 */
function startTime(pid: number): string | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return f[0] === 'Z' ? null : (f[19] ?? null);
  } catch {
    return null;
  }
}

/** Every process below `pid` (Erlang's erl_child_setup and the port programs it starts), with start times. */
function descendants(pid: number): Array<{ pid: number; start: string }> {
  const parent = new Map<number, number>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const s = readFileSync(`/proc/${e}/stat`, 'utf8');
      parent.set(Number(e), Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {}
  }
  const out: Array<{ pid: number; start: string }> = [];
  const walk = (p: number) => {
    for (const [child, ppid] of parent) {
      if (ppid !== p) continue;
      const start = startTime(child);
      if (start) out.push({ pid: child, start });
      walk(child);
    }
  };
  walk(pid);
  return out;
}

/**
 * Debian's ejabberd (Erlang/OTP), run as the `ejabberd` user straight
 * through `erl -s ejabberd` (what `ejabberdctl foreground` runs) without
 * Erlang distribution: no node name, so no epmd and no distribution
 * listener; the only socket is c2s on 127.0.0.1. Config, Mnesia spool and
 * log live in the bench's temp folder. Tuned (the default): no c2s shaper
 * and a listen backlog like Node's; untuned keeps the c2s shaper of
 * Debian's ejabberd.yml (`normal`: 3,000 B/s, bursts of 20,000 B) and
 * ejabberd's default backlog of 5.
 */
export class Ejabberd extends ServerProcess implements BenchServer {
  readonly name = 'ejabberd' as const;
  readonly label: string;
  private readonly configFile: string;
  private readonly uid: number;
  private readonly gid: number;
  private readonly erlLibs: string;

  constructor(
    private readonly dir: string,
    readonly port: number,
    cert: { crt: string; key: string },
    tuned = true,
    /** Load mod_mam with its default storage (Mnesia), archiving every message. */
    archive = false,
  ) {
    super();
    this.uid = Number(execFileSync('id', ['-u', 'ejabberd']).toString().trim());
    this.gid = Number(execFileSync('id', ['-g', 'ejabberd']).toString().trim());
    const version = ejabberdVersion() ?? '?';
    this.label = `ejabberd ${version.replace(/-[^-]*$/, '')}${tuned ? ' (no shaper)' : ' (Debian shaper)'}${archive ? ' (mod_mam)' : ''}`;
    // ERL_LIBS is the folder holding ejabberd-<version>/ebin (arch-specific on Debian).
    const app = execFileSync('dpkg', ['-L', 'ejabberd'])
      .toString()
      .split('\n')
      .find((l) => l.endsWith('/ebin/ejabberd.app'));
    if (!app) throw new Error('ejabberd is installed but its ebin/ejabberd.app was not found');
    this.erlLibs = app.split('/').slice(0, -3).join('/');
    for (const d of ['certs', 'mnesia', 'log']) mkdirSync(join(dir, d), { recursive: true });
    const crt = join(dir, 'certs', `${DOMAIN}.crt`);
    const key = join(dir, 'certs', `${DOMAIN}.key`);
    copyFileSync(cert.crt, crt);
    copyFileSync(cert.key, key);
    // Host names from /etc/hosts only: nothing the bench starts asks DNS.
    writeFileSync(join(dir, 'inetrc'), '{lookup, ["file"]}.\n');
    this.configFile = join(dir, 'ejabberd.yml');
    // The same module set as Prosody's: roster, offline, carbons, blocking
    // (with mod_privacy, which it needs), vCard, ping, disco, version, time,
    // last activity, PEP (mod_pubsub's pep plugin with mod_caps), group chat
    // at conference.<domain> with its defaults; MAM only for the archiving
    // figure. TLS options as in Debian's ejabberd.yml. Logging at warning.
    writeFileSync(
      this.configFile,
      `# Written by bench/servers.ts
hosts: ["${DOMAIN}"]
loglevel: warning
log_rotate_count: 0
certfiles:
  - "${crt}"
  - "${key}"
c2s_ciphers: "HIGH:!aNULL:!eNULL:!3DES:@STRENGTH"
c2s_protocol_options: ["no_sslv3", "no_tlsv1", "no_tlsv1_1", "cipher_server_preference", "no_compression"]
listen:
  -
    port: ${port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    max_stanza_size: 262144
    shaper: c2s_shaper
    access: c2s
    starttls_required: true
${tuned ? '    backlog: 511\n' : ''}auth_method: internal
auth_password_format: scram
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  muc_create:
    allow: local
  pubsub_createnode:
    allow: local
${
  tuned
    ? `shaper: {}
shaper_rules:
  max_user_sessions: 10
  c2s_shaper: none
`
    : `shaper:
  normal:
    rate: 3000
    burst_size: 20000
  fast: 200000
shaper_rules:
  max_user_sessions: 10
  c2s_shaper: normal
`
}modules:
  mod_roster: {}
  mod_disco: {}
  mod_ping: {}
  mod_vcard:
    search: false
  mod_carboncopy: {}
  mod_offline: {}
  mod_privacy: {}
  mod_blocking: {}
  mod_version: {}
  mod_time: {}
  mod_last: {}
  mod_caps: {}
  mod_pubsub:
    access_createnode: pubsub_createnode
    plugins: ["flat", "pep"]
  mod_muc:
    host: "conference.${DOMAIN}"
    access_create: muc_create
${archive ? '  mod_mam:\n    default: always\n' : ''}`,
    );
    chownTree(dir, this.uid, this.gid);
  }

  /** Runs `erl -s ejabberd` as the ejabberd user with `extra` arguments after it. */
  private spawnErl(extra: string[]): ChildProcess {
    const mnesia = JSON.stringify(join(this.dir, 'mnesia'));
    return spawn(
      '/usr/bin/erl',
      ['-noinput', '-noshell', '+K', 'true', '+P', '250000', '-mnesia', 'dir', mnesia, '-s', 'ejabberd', ...extra],
      {
        cwd: this.dir,
        uid: this.uid,
        gid: this.gid,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          PATH: process.env.PATH,
          HOME: this.dir,
          LANG: 'C.UTF-8',
          EJABBERD_CONFIG_PATH: this.configFile,
          EJABBERD_LOG_PATH: join(this.dir, 'log', 'ejabberd.log'),
          ERL_LIBS: this.erlLibs,
          ERL_INETRC: join(this.dir, 'inetrc'),
          ERL_CRASH_DUMP: join(this.dir, 'log', 'erl_crash.dump'),
          ERL_CRASH_DUMP_BYTES: '0',
          ERL_MAX_PORTS: '65536',
        },
      },
    );
  }

  /**
   * Boots ejabberd once with an -eval that registers the first user through
   * ejabberd_auth (SCRAM-SHA-1, as `ejabberdctl register` would), then
   * writes the same passwd record under every other user name straight
   * into Mnesia (one `ejabberdctl register` costs a VM start, about a
   * second), then stops the node.
   */
  async prepare(users: string[]): Promise<void> {
    for (const u of users) if (!/^[a-z0-9]+$/.test(u)) throw new Error(`user names must be plain alphanumerics: ${u}`);
    const list = join(this.dir, 'users.txt');
    writeFileSync(list, `${users.join('\n')}\n`);
    chownSync(list, this.uid, this.gid);
    const evalCode = `
      H = <<"${DOMAIN}">>,
      {ok, Bin} = file:read_file(${JSON.stringify(list)}),
      [First | Rest] = binary:split(Bin, <<"\\n">>, [global, trim_all]),
      case ejabberd_auth:try_register(First, H, <<"${PASSWORD}">>) of
        ok -> ok;
        Err -> io:format("bench-register-failed ~p~n", [Err]), erlang:halt(1)
      end,
      Tpl = [R || R <- mnesia:dirty_match_object(mnesia:table_info(passwd, wild_pattern)),
                  element(1, element(2, R)) =:= First],
      lists:foreach(fun(U) -> [ok = mnesia:dirty_write(setelement(2, R, setelement(1, element(2, R), U))) || R <- Tpl] end, Rest),
      io:format("bench-registered ~p~n", [length(ejabberd_auth:get_users(H))]),
      init:stop().`;
    const child = this.spawnErl(['-eval', evalCode]);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    children.add(child);
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    clearTimeout(timer);
    children.delete(child);
    const count = Number(/bench-registered (\d+)/.exec(out)?.[1] ?? -1);
    if (code !== 0 || count < users.length)
      throw new Error(
        `ejabberd: registering ${users.length} users failed (exit ${code}, ${count} registered):\n${out.slice(-3000)}`,
      );
  }

  async start(): Promise<void> {
    await this.attach(this.spawnErl([]));
  }

  /**
   * SIGTERM to beam.smp stops the node cleanly; the processes it started
   * (erl_child_setup and its port programs) are recorded first and, if one
   * outlives the node, killed by PID (same PID and start time, so never
   * another process).
   */
  override async stop(): Promise<void> {
    const below = this.pid ? descendants(this.pid) : [];
    await super.stop();
    const alive = () => below.filter((p) => startTime(p.pid) === p.start);
    const deadline = Date.now() + 5000;
    while (alive().length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    for (const p of alive()) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {}
    }
  }
}
