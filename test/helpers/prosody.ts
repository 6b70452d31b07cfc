// Runs Debian's Prosody 0.12 for federation tests: a private instance (own
// config, data and certificates in a temp folder owned by the `prosody`
// user), started in the foreground as that user on 127.0.0.1 and stopped by
// the PID the test started. Its resolver is pointed at the test's loopback
// DNS server (fake-dns.ts) with `unbound = { forward = ... }`, so no query
// or connection leaves loopback.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';

/** The uid and gid of Debian's `prosody` user (Prosody refuses to run as root). */
export function prosodyIds(): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', 'prosody']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'prosody']).toString().trim());
  return { uid, gid };
}

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

export interface ProsodyOptions {
  /** The VirtualHost. */
  domain: string;
  dir: string;
  c2sPort: number;
  s2sPort: number;
  dnsPort: number;
  secureAuth: boolean;
  cafile?: string;
  /** More configuration after the VirtualHost (e.g. a MUC Component). */
  extra?: string;
}

export function prosodyConfig(o: ProsodyOptions): string {
  const cert = join(o.dir, 'certs', `${o.domain}.crt`);
  const key = join(o.dir, 'certs', `${o.domain}.key`);
  return `-- Written by test/helpers/prosody.ts
pidfile = "${join(o.dir, 'prosody.pid')}"
data_path = "${join(o.dir, 'data')}"
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { ${o.c2sPort} }
s2s_ports = { ${o.s2sPort} }
c2s_direct_tls_ports = { }
s2s_direct_tls_ports = { }
http_ports = { }
https_ports = { }
use_ipv6 = false
modules_enabled = { "roster"; "saslauth"; "tls"; "dialback"; "disco"; "vcard"; "ping"; "s2s_auth_certs" }
modules_disabled = { "admin_shell"; "admin_socket"; "offline"; "c2s_direct_tls" }
authentication = "internal_plain"
storage = "internal"
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = ${o.secureAuth ? 'true' : 'false'}
log = { { levels = { min = "debug" }, to = "console" } }
-- Resolve through the test's loopback DNS server only (libunbound refuses
-- loopback forwarders unless told otherwise).
unbound = { forward = "127.0.0.1@${o.dnsPort}"; resolvconf = false; hoststxt = false;
  options = { ["do-not-query-localhost:"] = "no" } }
ssl = { certificate = "${cert}"; key = "${key}"; ${o.cafile ? `cafile = "${o.cafile}";` : ''} }
VirtualHost "${o.domain}"
${o.extra ?? ''}`;
}

export class Prosody {
  output = '';
  private proc!: ChildProcess;
  private exited!: Promise<void>;

  constructor(
    readonly configFile: string,
    private readonly ids: { uid: number; gid: number },
    private readonly dir: string,
    private readonly domain: string,
  ) {}

  register(user: string, password: string): void {
    execFileSync('prosodyctl', ['--config', this.configFile, 'register', user, this.domain, password], {
      uid: this.ids.uid,
      gid: this.ids.gid,
      env: { ...process.env, HOME: this.dir },
      stdio: 'pipe',
    });
  }

  /** Starts in the foreground as the prosody user; resolves once s2s listens. */
  async start(s2sPort: number): Promise<void> {
    this.proc = spawn('prosody', ['-F', '--config', this.configFile], {
      uid: this.ids.uid,
      gid: this.ids.gid,
      env: { ...process.env, HOME: this.dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.exited = new Promise((r) => this.proc.once('exit', () => r()));
    const ready = new RegExp(`Activated service 's2s' on \\[127\\.0\\.0\\.1\\]:${s2sPort}`);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`prosody did not start:\n${this.output.slice(-3000)}`)),
        15000,
      );
      const onData = (d: Buffer) => {
        this.output += d.toString();
        if (ready.test(this.output)) {
          clearTimeout(timer);
          resolve();
        }
      };
      this.proc.stdout!.on('data', onData);
      this.proc.stderr!.on('data', onData);
      this.proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`prosody exited (${code}):\n${this.output.slice(-3000)}`));
      });
    });
  }

  async stop(): Promise<void> {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}
