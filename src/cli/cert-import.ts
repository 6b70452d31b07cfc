// `jabberfly cert import DIR...`: certificates from certbot or another ACME
// client into tls.dir. For each served domain the certificate in DIR that
// names it (and lasts longest) is taken; certbot's layout (live/NAME/
// fullchain.pem + privkey.pem), a single such folder, and NAME.crt +
// NAME.key pairs are recognised. A running server loads them at once.
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { AdminError } from '../admin/account-admin.ts';
import { adminCall } from '../admin/client.ts';
import { adminSocketPath } from '../admin/protocol.ts';
import { servedDomains } from '../config/domains.ts';
import type { Config } from '../config/schema.ts';
import { type CertInfo, certInfo, nameCovers } from '../tls/certs.ts';

interface Candidate extends CertInfo {
  from: string;
  cert: string;
  key: string;
}

/** Certificate + key pairs found in a folder and its direct subfolders. */
function candidates(dir: string): Candidate[] {
  const found: Candidate[] = [];
  const tryPair = (certFile: string, keyFile: string) => {
    if (!existsSync(certFile) || !existsSync(keyFile)) return;
    const cert = readFileSync(certFile, 'utf8');
    const key = readFileSync(keyFile, 'utf8');
    try {
      createSecureContext({ cert, key });
      found.push({ ...certInfo(cert), from: certFile, cert, key });
    } catch {
      // Not a pair (or not a certificate): skipped.
    }
  };
  const scan = (d: string) => {
    tryPair(join(d, 'fullchain.pem'), join(d, 'privkey.pem'));
    for (const f of readdirSync(d)) {
      if (f.endsWith('.crt')) tryPair(join(d, f), join(d, `${f.slice(0, -4)}.key`));
    }
  };
  scan(dir);
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    // certbot's live/NAME entries are symlinks to folders.
    const sub = join(dir, e.name);
    if (e.isDirectory() || (e.isSymbolicLink() && statSync(sub).isDirectory())) scan(sub);
  }
  return found;
}

export async function certImport(
  config: Config,
  dirs: string[],
  print: (line: string) => void,
): Promise<number> {
  if (!dirs.length)
    throw new AdminError(
      'name the folder(s) to import from, e.g. jabberfly cert import /etc/letsencrypt/live',
    );
  const all = dirs.flatMap((d) => {
    if (!existsSync(d) || !statSync(d).isDirectory()) throw new AdminError(`${d} is not a folder`);
    return candidates(resolve(d));
  });
  const now = Date.now();
  const chosen = new Map<Candidate, string[]>();
  const uncovered: string[] = [];
  for (const host of servedDomains(config)) {
    const best = all
      .filter((c) => c.notAfter.getTime() > now && c.names.some((n) => nameCovers(n, host)))
      .sort((a, b) => b.notAfter.getTime() - a.notAfter.getTime())[0];
    if (best) chosen.set(best, [...(chosen.get(best) ?? []), host]);
    else uncovered.push(host);
  }
  const tlsDir = resolve(config.tls.dir);
  mkdirSync(tlsDir, { recursive: true, mode: 0o700 });
  // Run as root for certbot's keys, the files still belong to the server's user.
  const owner = statSync(tlsDir);
  for (const [c, hosts] of chosen) {
    // Under the first name it serves, so the server's SNI lookup finds it.
    const name = hosts[0]!;
    write(join(tlsDir, `${name}.key`), c.key, owner);
    write(join(tlsDir, `${name}.crt`), c.cert, owner);
    print(
      `imported ${name} (for ${hosts.join(', ')}; valid until ${c.notAfter.toISOString().slice(0, 10)}) from ${c.from}`,
    );
  }
  for (const host of uncovered)
    print(`not covered: ${host} (no valid certificate in ${dirs.join(', ')} names it)`);
  if (!chosen.size) return 1;
  const reloaded = config.admin.enabled
    ? await adminCall(adminSocketPath(config), { op: 'reload-certs' })
    : null;
  print(
    reloaded
      ? 'the running server has loaded them'
      : 'the server is not running: it loads them when it starts',
  );
  return 0;
}

function write(file: string, data: string, owner: { uid: number; gid: number }): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, data, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  if (process.getuid?.() === 0) chownSync(tmp, owner.uid, owner.gid);
  renameSync(tmp, file);
}
