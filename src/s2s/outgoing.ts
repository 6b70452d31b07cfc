// One outgoing server-to-server stream from a local domain to a remote one.
// Two uses share the connection logic (resolve, connect, STARTTLS or direct
// TLS, stream features):
//   - 'link': authenticates our domain (SASL EXTERNAL when offered, else
//     Server Dialback) and then carries stanzas; stanzas wait in a queue
//     while it comes up and bounce if it cannot;
//   - 'verify': the XEP-0220 round trip to an authoritative server, asking
//     with <db:verify/> whether a key presented to us is genuine.
// Streams are one-way (no XEP-0288): stanzas only flow out on this one.
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { SlowConsumerGuard } from '../c2s/slow-consumer.ts';
import { TcpFraming } from '../stream/tcp-framing.ts';
import { type Element, el, escapeXML } from '../xml/element.ts';
import { streamErrorElement } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';
import { resolveTargets, type Target } from './resolve.ts';
import type { S2SService } from './s2s-service.ts';
import { isDialback, isStreamElement } from './stanza-names.ts';

export type Purpose = 'link' | 'verify';
export type VerifyResult = 'valid' | 'invalid' | 'error';
type FailCondition = 'remote-server-not-found' | 'remote-server-timeout';
type State = 'connecting' | 'wait-open' | 'negotiating' | 'ready' | 'closed';

/** Stanzas held while a link comes up; more than this bounce. */
const MAX_QUEUE = 1000;

class ConnectTimeout extends Error {}

export class OutgoingStream {
  state: State = 'connecting';
  private framing: TcpFraming | null = null;
  private streamId = '';
  private peerHasDialback = false;
  private saslState: 'none' | 'trying' | 'failed' | 'done' = 'none';
  private queue: Element[] = [];
  private readonly verifies = new Map<string, { key: string; resolve: (r: VerifyResult) => void }>();
  private negotiationTimer: NodeJS.Timeout | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private socket: Socket | null = null;
  /**
   * Bounds what waits for a remote server that does not read (a remote
   * occupant's server in a busy room, a hostile peer): the same policy as
   * for clients (c2s/slow-consumer.ts), the link closed with
   * policy-violation at its limits; the next stanza opens a new one.
   */
  private readonly outbound: SlowConsumerGuard;

  constructor(
    private readonly service: S2SService,
    readonly local: string,
    readonly remote: string,
    readonly purpose: Purpose,
    private readonly onEnded: (s: OutgoingStream) => void,
  ) {
    const { limits } = service.server.config;
    this.outbound = new SlowConsumerGuard(
      () => (this.state === 'ready' ? this.framing : null),
      {
        queueSize: limits.outboundQueueSize,
        maxQueueSize: limits.outboundQueueMaxSize,
        timeoutMs: limits.slowConsumerTimeout * 1000,
      },
      (why) => this.tooSlow(why),
    );
  }

  /** The remote server does not read what this link sends: the link ends (what it had not read is lost with it). */
  private tooSlow(why: string): void {
    if (this.state !== 'ready') return;
    this.log.warn('closing a server link that does not read', { from: this.local, to: this.remote, why });
    this.framing!.send(streamErrorElement('policy-violation', 'you do not read what you are sent'));
    this.finish('remote-server-timeout', 'the remote server does not read');
  }

  private get log() {
    return this.service.log;
  }

  private get config() {
    return this.service.server.config.s2s;
  }

  /** Resolves, connects and negotiates in the background. */
  start(): void {
    this.connect().catch((err) => {
      this.log.error('outgoing s2s failed unexpectedly', {
        to: this.remote,
        error: String(err?.stack ?? err),
      });
      this.fail('remote-server-not-found', 'internal error');
    });
  }

  /** Queues or writes a stanza (purpose 'link'). */
  send(stanza: Element): void {
    if (this.state === 'closed') {
      this.service.server.router.bounce(stanza, 'remote-server-not-found');
      return;
    }
    if (this.state === 'ready') {
      this.framing!.send(stanza);
      this.outbound.afterWrite();
      this.touch();
      return;
    }
    if (this.queue.length >= MAX_QUEUE) {
      this.service.server.router.bounce(
        stanza,
        'resource-constraint',
        'too many stanzas waiting for this server',
      );
      return;
    }
    this.queue.push(stanza);
  }

  /** Asks the authoritative server whether `key` for stream `id` is genuine (purpose 'verify'). */
  requestVerify(id: string, key: string): Promise<VerifyResult> {
    if (this.state === 'closed') return Promise.resolve('error');
    return new Promise((resolve) => {
      const prev = this.verifies.get(id);
      if (prev) prev.resolve('error');
      this.verifies.set(id, { key, resolve });
      if (this.state === 'ready') this.sendVerify(id, key);
    });
  }

  /** Ends the stream cleanly (idle, shutdown); anything still queued bounces. */
  close(): void {
    if (this.state === 'closed') return;
    this.finish('remote-server-not-found', 'the connection was closed');
  }

  private async connect(): Promise<void> {
    let targets: Target[];
    try {
      targets = await resolveTargets(this.remote, this.config.routes, this.service.dns);
    } catch (err) {
      this.fail('remote-server-not-found', (err as Error).message);
      return;
    }
    if (targets.length === 0) {
      this.fail('remote-server-not-found', `${this.remote} offers no XMPP service`);
      return;
    }
    let timedOut = false;
    for (const target of targets) {
      // stop() may have closed us while we were resolving or connecting.
      if ((this.state as State) === 'closed') return;
      try {
        const socket = await this.open(target);
        if ((this.state as State) === 'closed') {
          socket.destroy();
          return;
        }
        this.log.debug('outgoing s2s connected', {
          from: this.local,
          to: this.remote,
          host: target.host,
          port: target.port,
          directTls: target.directTls,
          purpose: this.purpose,
        });
        this.attach(socket);
        return;
      } catch (err) {
        if (err instanceof ConnectTimeout) timedOut = true;
        this.log.debug('outgoing s2s connect failed', {
          to: this.remote,
          host: target.host,
          port: target.port,
          error: (err as Error).message,
        });
      }
    }
    if (timedOut) {
      this.fail('remote-server-timeout', `connecting to ${this.remote} timed out`);
      return;
    }
    this.fail('remote-server-not-found', `could not connect to ${this.remote}`);
  }

  private open(target: Target): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = target.directTls
        ? tlsConnect({
            host: target.host,
            port: target.port,
            servername: this.remote,
            secureContext: this.service.tls.context(this.local),
            ALPNProtocols: ['xmpp-server'],
            rejectUnauthorized: false, // judged by policy (S2STls.peerVerified), not here
          })
        : netConnect({ host: target.host, port: target.port });
      this.socket = socket;
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new ConnectTimeout('connect timed out'));
      }, this.config.connectTimeout * 1000);
      const ok = () => {
        clearTimeout(timer);
        socket.off('error', bad);
        resolve(socket);
      };
      const bad = (err: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      socket.once(target.directTls ? 'secureConnect' : 'connect', ok);
      socket.once('error', bad);
    });
  }

  private attach(socket: Socket): void {
    const framing = new TcpFraming(socket, {
      // We only read features and dialback answers here, never stanzas.
      limits: this.service.server.preAuthLimits,
      tlsClient: { servername: this.remote, secureContext: this.service.tls.context(this.local) },
      handshakeTimeout: this.service.server.config.limits.tlsHandshakeTimeout * 1000,
    });
    this.framing = framing;
    framing.setHandlers({
      open: (attrs) => this.onOpen(attrs),
      stanza: (s) => this.onElement(s),
      close: () => this.onPeerClose(),
      error: (condition, text) => {
        framing.send(el('stream:error', null, el(condition, { xmlns: NS.streams })));
        this.fail('remote-server-not-found', `bad XML from ${this.remote}: ${text}`);
      },
      end: (reason) => this.fail('remote-server-not-found', reason),
    });
    // The whole negotiation (TLS, authentication, the peer's dialback check
    // with us) must finish in time; stanzas wait for it.
    this.negotiationTimer = setTimeout(
      () =>
        this.fail('remote-server-timeout', `${this.remote} did not complete the stream negotiation in time`),
      this.config.connectTimeout * 1000,
    );
    this.negotiationTimer.unref();
    this.sendHeader();
  }

  /** Our stream header. The initiating side sends no id (RFC 6120 §4.7.3). */
  private sendHeader(): void {
    this.state = 'wait-open';
    this.framing!.write(
      `<?xml version='1.0'?><stream:stream xmlns='${NS.server}' xmlns:stream='${NS.stream}'` +
        ` xmlns:db='${NS.dialback}' from='${escapeXML(this.local)}' to='${escapeXML(this.remote)}'` +
        ` version='1.0' xml:lang='en'>`,
    );
  }

  private onOpen(attrs: Record<string, string>): void {
    if (this.state !== 'wait-open') return;
    if (attrs.xmlns !== NS.server) {
      this.fail('remote-server-not-found', 'the peer did not open a jabber:server stream');
      return;
    }
    this.streamId = attrs.id ?? '';
    this.peerHasDialback = attrs['xmlns:db'] === NS.dialback;
    if (!attrs.version || !/^1\./.test(attrs.version)) {
      this.fail('remote-server-not-found', `${this.remote} does not support XMPP 1.0 (no STARTTLS)`);
      return;
    }
    this.state = 'negotiating';
  }

  private onElement(stanza: Element): void {
    if (this.state === 'closed') return;
    if (isStreamElement(stanza, 'features')) {
      this.onFeatures(stanza);
      return;
    }
    if (isStreamElement(stanza, 'error')) {
      const condition = stanza.children.find((c) => typeof c !== 'string' && c.attrs.xmlns === NS.streams);
      const text = `${this.remote} closed the stream: ${typeof condition === 'object' ? condition.name : 'error'}`;
      this.fail('remote-server-not-found', text);
      return;
    }
    if (stanza.name === 'proceed' && stanza.attrs.xmlns === NS.tls) {
      this.startTls();
      return;
    }
    if (stanza.name === 'failure' && stanza.attrs.xmlns === NS.tls) {
      this.fail('remote-server-not-found', `${this.remote} refused STARTTLS`);
      return;
    }
    if (stanza.attrs.xmlns === NS.sasl) {
      this.onSasl(stanza);
      return;
    }
    if (isDialback(stanza, 'result')) {
      this.onDialbackResult(stanza);
      return;
    }
    if (isDialback(stanza, 'verify')) {
      this.onDialbackVerify(stanza);
      return;
    }
    this.log.debug('ignoring element on an outgoing s2s stream', { from: this.remote, name: stanza.name });
  }

  private onFeatures(features: Element): void {
    const framing = this.framing!;
    if (!framing.secure) {
      // We only federate over TLS (Prosody's s2s_require_encryption default).
      if (!features.getChild('starttls', NS.tls)) {
        this.fail('remote-server-not-found', `${this.remote} does not offer STARTTLS`);
        return;
      }
      framing.send(el('starttls', { xmlns: NS.tls }));
      return;
    }
    if (this.purpose === 'verify') {
      this.ready();
      return;
    }
    if (this.saslState === 'done') {
      this.ready();
      return;
    }
    const verified = this.service.tls.peerVerified(framing, this.remote);
    if (this.config.secureAuth && !verified) {
      this.fail(
        'remote-server-not-found',
        `the certificate of ${this.remote} does not verify (s2s.secureAuth)`,
      );
      return;
    }
    if (features.getChild('dialback', NS.dialbackFeature)) this.peerHasDialback = true;
    const mechanisms = features.getChild('mechanisms', NS.sasl);
    const external = mechanisms?.getChildren('mechanism').some((m) => m.getText().trim() === 'EXTERNAL');
    if (external && this.saslState === 'none') {
      this.saslState = 'trying';
      framing.send(
        el('auth', { xmlns: NS.sasl, mechanism: 'EXTERNAL' }, Buffer.from(this.local).toString('base64')),
      );
      return;
    }
    this.startDialback();
  }

  private startTls(): void {
    this.framing!.startTls((err) => {
      if (err) {
        this.fail('remote-server-not-found', `TLS with ${this.remote} failed: ${err.message}`);
        return;
      }
      if (this.state === 'closed') return;
      this.sendHeader();
    });
  }

  private onSasl(stanza: Element): void {
    if (this.saslState !== 'trying') return;
    if (stanza.name === 'success') {
      this.saslState = 'done';
      this.log.info('outgoing s2s authenticated', { from: this.local, to: this.remote, method: 'EXTERNAL' });
      this.framing!.restart();
      this.sendHeader();
      return;
    }
    this.saslState = 'failed';
    this.log.info('SASL EXTERNAL refused, trying dialback', { to: this.remote, reply: stanza.toString() });
    this.startDialback();
  }

  private startDialback(): void {
    if (!this.peerHasDialback) {
      this.fail('remote-server-not-found', `no authentication method in common with ${this.remote}`);
      return;
    }
    const key = this.service.keys.key(this.remote, this.local, this.streamId);
    this.framing!.send(el('db:result', { from: this.local, to: this.remote }, key));
  }

  private onDialbackResult(stanza: Element): void {
    if (this.purpose !== 'link' || this.state !== 'negotiating') return;
    if (stanza.attrs.from !== this.remote || stanza.attrs.to !== this.local) return;
    if (stanza.attrs.type === 'valid') {
      this.log.info('outgoing s2s authenticated', { from: this.local, to: this.remote, method: 'dialback' });
      this.ready();
      return;
    }
    const why =
      stanza.attrs.type === 'invalid' ? 'refused our dialback key' : 'could not check our dialback key';
    this.fail('remote-server-not-found', `${this.remote} ${why}`);
  }

  private onDialbackVerify(stanza: Element): void {
    if (this.purpose !== 'verify') return;
    const id = stanza.attrs.id ?? '';
    const pending = this.verifies.get(id);
    if (!pending || stanza.attrs.from !== this.remote || stanza.attrs.to !== this.local) return;
    this.verifies.delete(id);
    const type = stanza.attrs.type;
    pending.resolve(type === 'valid' ? 'valid' : type === 'invalid' ? 'invalid' : 'error');
    // One verify connection per question burst: nothing left to ask, so leave.
    if (this.verifies.size === 0) this.finish('remote-server-not-found', 'done');
  }

  private sendVerify(id: string, key: string): void {
    this.framing!.send(el('db:verify', { from: this.local, to: this.remote, id }, key));
  }

  private ready(): void {
    if (this.negotiationTimer) clearTimeout(this.negotiationTimer);
    this.negotiationTimer = null;
    this.state = 'ready';
    if (this.purpose === 'verify') {
      for (const [id, v] of this.verifies) this.sendVerify(id, v.key);
      if (this.verifies.size === 0) this.finish('remote-server-not-found', 'nothing to verify');
      return;
    }
    const queued = this.queue;
    this.queue = [];
    for (const s of queued) this.framing!.send(s);
    this.outbound.afterWrite();
    this.touch();
  }

  private touch(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.log.debug('closing idle outgoing s2s link', { from: this.local, to: this.remote });
      this.close();
    }, this.config.idleTimeout * 1000);
    this.idleTimer.unref();
  }

  private onPeerClose(): void {
    this.fail('remote-server-not-found', `${this.remote} closed the stream`);
  }

  /** Gives up: queued stanzas bounce with `condition`, open questions answer 'error'. */
  private fail(condition: FailCondition, text: string): void {
    if (this.state === 'closed') return;
    if (this.state !== 'ready' || this.queue.length > 0 || this.verifies.size > 0) {
      this.log.info('outgoing s2s failed', {
        from: this.local,
        to: this.remote,
        purpose: this.purpose,
        condition,
        text,
      });
    }
    this.finish(condition, text);
  }

  private finish(condition: FailCondition, text: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.outbound.stop();
    if (this.negotiationTimer) clearTimeout(this.negotiationTimer);
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.negotiationTimer = this.idleTimer = null;
    if (this.framing) this.framing.closeStream();
    else this.socket?.destroy();
    const queued = this.queue;
    this.queue = [];
    for (const s of queued) this.service.server.router.bounce(s, condition, text);
    for (const v of this.verifies.values()) v.resolve('error');
    this.verifies.clear();
    this.onEnded(this);
  }
}
