// Certificates from an ACME CA (RFC 8555: Let's Encrypt by default) for the
// domain and every service domain, through acme-client: on start and every
// acme.checkInterval the main certificate is checked, and a new one is
// ordered when it is missing, self-signed, lacks a served name, or expires
// within acme.renewDays. The CA validates through the http service
// (HTTP-01) or the https listener (TLS-ALPN-01). The new pair is written to
// tls.dir and loaded at once, with no restart and no SIGHUP: new
// connections get it, open ones keep theirs.
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import acme from 'acme-client';
import { servedDomains } from '../config/domains.ts';
import type { Logger } from '../log.ts';
import type { Server } from '../server.ts';
import type { Service } from '../services.ts';
import { certInfo, nameCovers } from '../tls/certs.ts';
import { readAccount, writeAccount, writeCertificatePair } from './acme-files.ts';

/** After a failed order, the next try comes within this (or acme.checkInterval if shorter). */
const RETRY_MS = 3600 * 1000;

export interface AcmeState {
  names: string[];
  lastAttempt: string | null;
  lastError: string | null;
  lastIssued: string | null;
  nextCheck: string | null;
}

export class AcmeService implements Service {
  private readonly log: Logger;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  readonly state: AcmeState;

  constructor(private readonly server: Server) {
    this.log = server.log.child('acme');
    this.state = {
      names: servedDomains(server.config),
      lastAttempt: null,
      lastError: null,
      lastIssued: null,
      nextCheck: null,
    };
    server.statusSections.add('acme', () => ({
      directory: server.config.acme.directory,
      ...this.state,
      challenges: this.challengeTypes(),
    }));
  }

  async start(): Promise<void> {
    const { acme: cfg } = this.server.config;
    acme.setLogger((msg) => this.log.debug(msg));
    if (cfg.caFile) {
      // acme-client talks HTTP through its own axios instance; a private CA is trusted there only.
      acme.axios.defaults.httpsAgent = new Agent({ ca: readFileSync(cfg.caFile, 'utf8') });
    }
    if (!this.challengeTypes().length) {
      this.log.error('acme.enabled needs the http service (http-01) or the https service (tls-alpn-01)');
      return;
    }
    // The first check runs once the server is up, without delaying its start.
    this.schedule(0);
  }

  /** Challenge types this server can answer: configured, and their listener on. */
  challengeTypes(): string[] {
    const { config } = this.server;
    return config.acme.challenges.filter((c) =>
      c === 'http-01'
        ? config.http.port !== false
        : c === 'tls-alpn-01'
          ? config.https.port !== false
          : false,
    );
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.running = this.check().finally(() => {
        this.running = null;
      });
    }, ms);
    this.timer.unref();
    this.state.nextCheck = new Date(Date.now() + ms).toISOString();
  }

  /** Why the main certificate must be replaced, or null when it is good. */
  private reason(): string | null {
    const { config } = this.server;
    const pair = this.server.certs.pairs.get(config.domain);
    if (!pair) return 'no certificate';
    const info = certInfo(pair.cert);
    if (info.selfSigned) return 'self-signed';
    const missing = this.state.names.filter((n) => !info.names.some((p) => nameCovers(p, n)));
    if (missing.length) return `does not cover ${missing.join(', ')}`;
    const days = (info.notAfter.getTime() - Date.now()) / 86_400_000;
    if (days < config.acme.renewDays) return `expires in ${Math.max(0, Math.floor(days))} days`;
    return null;
  }

  private async check(): Promise<void> {
    const interval = this.server.config.acme.checkInterval * 1000;
    const why = this.reason();
    if (!why) {
      this.log.debug('certificate is current', { domain: this.server.config.domain });
      this.schedule(interval);
      return;
    }
    this.state.lastAttempt = new Date().toISOString();
    try {
      await this.order(why);
      this.state.lastError = null;
      this.schedule(interval);
    } catch (err) {
      this.state.lastError = (err as Error).message ?? String(err);
      this.log.error('certificate order failed', { error: this.state.lastError });
      this.schedule(Math.min(interval, RETRY_MS));
    }
  }

  private async order(why: string): Promise<void> {
    const { config, acmeChallenges: challenges, certs } = this.server;
    const names = this.state.names;
    this.log.info('requesting a certificate', {
      names: names.join(','),
      reason: why,
      directory: config.acme.directory,
    });
    const account = await readAccount(config.tls.dir, config.acme.directory, () =>
      acme.crypto.createPrivateEcdsaKey(),
    );
    const client = new acme.Client({
      directoryUrl: config.acme.directory,
      accountKey: account.key,
      accountUrl: account.url ?? undefined,
    });
    const [key, csr] = await acme.crypto.createCsr(
      { commonName: names[0], altNames: names },
      await acme.crypto.createPrivateEcdsaKey(),
    );
    const chain = await client.auto({
      csr,
      email: config.acme.email || undefined,
      // Enabling ACME is agreeing to the CA's terms (README "Certificates").
      termsOfServiceAgreed: true,
      // The server answers its own challenges; `jabberfly check` tests reachability.
      skipChallengeVerification: true,
      challengePriority: this.challengeTypes(),
      challengeCreateFn: async (authz, challenge, keyAuthorization) => {
        if (challenge.type === 'http-01') challenges.setHttp(challenge.token, keyAuthorization);
        else if ((challenge.type as string) === 'tls-alpn-01') {
          const [k, c] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization);
          challenges.setTls(authz.identifier.value, c.toString(), k.toString());
        }
        this.log.debug('challenge open', { type: challenge.type, name: authz.identifier.value });
      },
      challengeRemoveFn: async (authz, challenge) => {
        if (challenge.type === 'http-01') challenges.deleteHttp(challenge.token);
        else if ((challenge.type as string) === 'tls-alpn-01') challenges.deleteTls(authz.identifier.value);
      },
    });
    if (!account.url) writeAccount(config.tls.dir, config.acme.directory, client.getAccountUrl());
    writeCertificatePair(config.tls.dir, config.domain, key.toString(), chain);
    if (!certs.reload()) throw new Error('the new certificate could not be loaded (see the log above)');
    const info = certInfo(chain);
    this.state.lastIssued = new Date().toISOString();
    this.log.info('certificate obtained and loaded', {
      names: info.names.join(','),
      notAfter: info.notAfter.toISOString(),
      issuer: info.issuer,
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    // An order in flight finishes (or fails) before storage and listeners go.
    await this.running?.catch(() => {});
  }
}

export function acmeServiceFactory(server: Server): AcmeService | null {
  return server.config.acme.enabled ? new AcmeService(server) : null;
}
