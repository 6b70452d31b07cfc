// The few lines `jabberfly start` prints once it is up: where to connect,
// where the web client is, how to add the first user, what the MSN
// transport will do, and where config, certificates and data live. Plain
// text on stdout for the person at the terminal; the structured log goes on
// to stderr as before.
import { relative } from 'node:path';

export interface BannerFacts {
  version: string;
  domain: string;
  listen: string[];
  c2s: { starttls: number | null; directTls: number | null };
  s2s: { starttls: number | null; directTls: number | null } | null;
  web: { http: number | null; https: number | null; client: boolean; requireTls: boolean } | null;
  msn: { enabled: boolean; domain: string; server: string };
  /** Other service domains (conference., upload., ...), shown as served. */
  services: string[];
  configFile: string | null;
  /** The --config the server was started with, repeated in the hints (JABBERFLY_CONFIG applies by itself). */
  configFlag: string | null;
  certDir: string;
  /** The main domain's certificate is self-signed (browsers and clients will warn). */
  selfSigned: boolean;
  storePath: string;
  adminSocket: string | null;
  accounts: number;
  /** How the user runs the CLI here ("npx jabberfly", "jabberfly", "./jabberfly"). */
  cli: string;
}

export function banner(f: BannerFacts): string {
  const rows: Array<[string, string]> = [];
  const host = f.domain;
  const c2s = [
    f.c2s.starttls !== null ? `${host}:${f.c2s.starttls} (STARTTLS)` : '',
    f.c2s.directTls !== null ? `${host}:${f.c2s.directTls} (direct TLS)` : '',
  ].filter(Boolean);
  rows.push(['XMPP clients', c2s.length ? c2s.join(', ') : 'off']);
  const webUrl = webClientUrl(f);
  if (f.web) {
    if (webUrl)
      rows.push([
        'web client',
        `${webUrl}${f.selfSigned && webUrl.startsWith('https') ? '  (self-signed: the browser asks you to accept it)' : ''}`,
      ]);
    const ws = [
      f.web.https !== null ? `wss://${host}:${f.web.https}/xmpp-websocket` : '',
      f.web.http !== null && !f.web.requireTls ? `ws://${host}:${f.web.http}/xmpp-websocket` : '',
    ].filter(Boolean);
    if (ws.length) rows.push(['WebSocket', ws.join(', ')]);
  }
  rows.push(['federation', f.s2s && f.s2s.starttls !== null ? `port ${f.s2s.starttls}` : 'off']);
  if (!f.msn.enabled) rows.push(['MSN transport', 'off (msn.enabled: false)']);
  else if (!f.msn.server) {
    rows.push([
      'MSN transport',
      `${f.msn.domain}, NOT CONFIGURED: set msn.server to a live MSN service (see docs/transport.md)`,
    ]);
  } else rows.push(['MSN transport', `${f.msn.domain} → ${f.msn.server}`]);
  for (const d of f.services) rows.push(['service', d]);
  rows.push(['listening on', f.listen.length ? f.listen.join(', ') : 'all interfaces']);
  rows.push([
    'config',
    f.configFile ? show(f.configFile) : 'none (built-in defaults; see README "Configuration")',
  ]);
  rows.push(['certificates', `${show(f.certDir)}${f.selfSigned ? ' (self-signed)' : ''}`]);
  rows.push(['store', show(f.storePath)]);
  if (f.adminSocket) rows.push(['admin socket', show(f.adminSocket)]);

  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  const lines = [
    `jabberfly ${f.version} is serving ${host}`,
    ...rows.map(([k, v]) => `  ${k.padEnd(width)}${v}`),
    '',
  ];
  const config = f.configFlag && f.configFlag !== 'jabberfly.yaml' ? ` --config ${f.configFlag}` : '';
  if (f.accounts === 0) {
    lines.push(
      'No accounts yet. In a second terminal, add the first one:',
      `  ${f.cli} adduser alice@${host}${config}`,
      `then log in as alice@${host} with any XMPP client${webUrl && f.web?.client ? `, or at ${webUrl}` : ''}.`,
    );
  } else {
    lines.push(
      `${f.accounts} account${f.accounts > 1 ? 's' : ''}. '${f.cli} status${config}' shows who is online, '${f.cli} --help' the other commands.`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Where a person opens the web client: HTTPS when logins need TLS. */
function webClientUrl(f: BannerFacts): string | null {
  if (!f.web?.client) return null;
  if (f.web.https !== null) return `https://${f.domain}:${f.web.https}/`;
  if (f.web.http !== null) return `http://${f.domain}:${f.web.http}/`;
  return null;
}

/** Paths under the current folder are shown relative, as the user typed them. */
function show(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') && !rel.startsWith('/') ? `./${rel}` : path;
}
