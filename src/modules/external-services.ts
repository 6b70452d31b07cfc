// XEP-0215 External Service Discovery: the STUN/TURN servers clients need
// to place calls (Jingle). The TURN server is coturn (or any server that
// speaks the "TURN REST API" convention): it shares turn.secret with us and
// accepts, until the time in the username, any username of the form
// `<expiry unix time>:<bare JID>` whose password is
// base64(HMAC-SHA1(secret, username)). So credentials are minted here per
// request, time-limited, and never stored. Only this server's users get them.
import { createHmac } from 'node:crypto';
import type { Config } from '../config/schema.ts';
import type { Module, StanzaEvent } from '../host/host.ts';
import { sendResult } from '../host/iq-result.ts';
import { type Element, el, firstChild } from '../xml/element.ts';
import { StanzaError } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';

const DEFAULT_STUN_PORT = 3478;

interface ExternalService {
  type: 'stun' | 'turn' | 'turns';
  host: string;
  port: number;
  transport: 'udp' | 'tcp';
  /** Needs credentials (TURN). */
  restricted: boolean;
}

export const externalServicesModule: Module = (host) => {
  const { config } = host.server;
  const services = configuredServices(config);
  if (services.length === 0) return;
  host.features.add(NS.extdisco);

  const localUser = (e: StanzaEvent) => {
    if (e.origin.kind !== 'c2s' || e.from.domain !== config.domain) {
      throw new StanzaError('forbidden', 'external services are offered to users of this server only');
    }
  };

  // XEP-0215 §3.1: all services, or those of one type.
  host.hook(`iq-get/host/${NS.extdisco}:services`, async (e) => {
    localUser(e);
    const type = firstChild(e.stanza)!.attrs.type;
    const picked = services.filter((s) => !type || s.type === type);
    sendResult(e, el('services', { xmlns: NS.extdisco }, ...picked.map((s) => serviceElement(s, config, e.from.bare))));
  });

  // XEP-0215 §3.3: fresh credentials for one service (host, type, optional port).
  host.hook(`iq-get/host/${NS.extdisco}:credentials`, async (e) => {
    localUser(e);
    const want = firstChild(e.stanza)!.getChild('service');
    if (!want?.attrs.host) throw new StanzaError('bad-request', 'name a service by host (and type)');
    const port = want.attrs.port ? Number(want.attrs.port) : undefined;
    const match = services.find(
      (s) =>
        s.restricted &&
        s.host === want.attrs.host &&
        (!want.attrs.type || s.type === want.attrs.type) &&
        (port === undefined || s.port === port),
    );
    if (!match) throw new StanzaError('item-not-found', 'no service with credentials by that name');
    sendResult(e, el('credentials', { xmlns: NS.extdisco }, serviceElement(match, config, e.from.bare)));
  });
};

/** What the configuration offers: STUN on the TURN host and the static STUN servers, TURN when there is a secret. */
export function configuredServices(config: Config): ExternalService[] {
  const t = config.turn;
  const out: ExternalService[] = [];
  if (t.host && t.port !== false) {
    out.push({ type: 'stun', host: t.host, port: t.port, transport: 'udp', restricted: false });
  }
  for (const entry of t.stun) {
    const [name, port] = entry.split(':');
    out.push({ type: 'stun', host: name!, port: port ? Number(port) : DEFAULT_STUN_PORT, transport: 'udp', restricted: false });
  }
  if (t.host && t.secret) {
    if (t.port !== false) {
      for (const transport of t.transports as Array<'udp' | 'tcp'>) {
        out.push({ type: 'turn', host: t.host, port: t.port, transport, restricted: true });
      }
    }
    if (t.tlsPort !== false) {
      out.push({ type: 'turns', host: t.host, port: t.tlsPort, transport: 'tcp', restricted: true });
    }
  }
  return out;
}

/** TURN REST API credentials for `user`, valid for turn.credentialLifetime seconds from `now`. */
export function turnCredentials(
  secret: string,
  user: string,
  lifetimeSeconds: number,
  now = Date.now(),
): { username: string; password: string; expires: Date } {
  const expiry = Math.floor(now / 1000) + lifetimeSeconds;
  const username = `${expiry}:${user}`;
  const password = createHmac('sha1', secret).update(username).digest('base64');
  return { username, password, expires: new Date(expiry * 1000) };
}

function serviceElement(s: ExternalService, config: Config, user: string): Element {
  const attrs: Record<string, string> = { type: s.type, host: s.host, port: String(s.port), transport: s.transport };
  if (s.restricted) {
    const c = turnCredentials(config.turn.secret, user, config.turn.credentialLifetime);
    Object.assign(attrs, {
      restricted: '1',
      username: c.username,
      password: c.password,
      // XEP-0082 DateTime, whole seconds.
      expires: c.expires.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    });
  }
  return el('service', attrs);
}
