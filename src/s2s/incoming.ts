// One incoming server-to-server stream (RFC 6120, jabber:server): STARTTLS
// (required, as Prosody requires by default), then the peer authenticates
// its domain with SASL EXTERNAL (a certificate that verifies) or Server
// Dialback (XEP-0220, checked with the authoritative server). Only then are
// stanzas accepted, and each must come from an authenticated domain and go
// to a domain we host. This side also answers <db:verify/> for keys we made
// as the authoritative server.
import { answerStartTls } from '../stream/starttls.ts';
import { randomBytes } from 'node:crypto';
import { Jid } from '../jid/jid.ts';
import { type InboundStream, runInbound } from '../stream/inbound-context.ts';
import type { TcpFraming } from '../stream/tcp-framing.ts';
import { type Element, el } from '../xml/element.ts';
import { type StreamErrorName, streamErrorElement } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';
import type { S2SService } from './s2s-service.ts';
import { domainAttr, isDialback, isStanza, isStreamElement } from './stanza-names.ts';

type State = 'wait-open' | 'open' | 'closed';

export class IncomingStream implements InboundStream {
  /** Remote domains that proved who they are on this stream. */
  readonly authenticated = new Set<string>();
  private state: State = 'wait-open';
  private streamId = '';
  /** Our domain as addressed in the stream header. */
  private localDomain: string;
  /** The peer's domain as claimed in the stream header (may be absent). */
  private remoteDomain: string | null = null;
  private externalOffered = false;
  private saslDone = false;
  private authTimer: NodeJS.Timeout | null;
  private idleTimer: NodeJS.Timeout | null = null;
  private readonly pendingResults = new Set<string>();

  constructor(
    private readonly service: S2SService,
    private readonly framing: TcpFraming,
    private readonly onEnded: (s: IncomingStream) => void,
  ) {
    this.localDomain = service.server.config.domain;
    framing.setHandlers({
      open: (attrs, name) => this.onOpen(attrs, name),
      stanza: (s) => this.onElement(s),
      close: () => this.onPeerClose(),
      error: (condition, text) => this.close(condition, text),
      end: (reason) => this.ended(reason),
    });
    // A stream that never authenticates (scans, slowloris) must not linger.
    this.authTimer = setTimeout(
      () => this.close('connection-timeout', 'authentication took too long'),
      service.server.config.limits.authTimeout * 1000,
    );
    this.authTimer.unref();
  }

  get ip(): string {
    return this.framing.remoteAddress;
  }

  get closed(): boolean {
    return this.state === 'closed';
  }

  // A local client this link feeds is not reading: stop reading the link
  // until it catches up (c2s/slow-consumer.ts).
  private pausedBy = 0;
  pauseReading(): void {
    if (this.pausedBy++ === 0) this.framing.pause();
  }
  resumeReading(): void {
    if (this.pausedBy > 0 && --this.pausedBy === 0) this.framing.resume();
  }

  private get log() {
    return this.service.log;
  }

  close(error?: StreamErrorName, text?: string): void {
    if (this.state === 'closed') return;
    // A stream error needs a stream to travel in (RFC 6120 §4.9.1.2).
    if (this.state === 'wait-open') this.sendHeader(null);
    if (error) {
      this.log.debug('incoming s2s stream error', {
        condition: error,
        text,
        ip: this.ip,
        from: this.remoteDomain,
      });
      this.framing.send(streamErrorElement(error, text));
    }
    this.state = 'closed';
    this.framing.closeStream();
    this.ended('closed by us');
  }

  private ending = false;
  private ended(reason: string): void {
    this.state = 'closed';
    if (this.authTimer) clearTimeout(this.authTimer);
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.authTimer = this.idleTimer = null;
    if (this.ending) return;
    this.ending = true;
    this.log.debug('incoming s2s stream ended', { ip: this.ip, from: this.remoteDomain, reason });
    this.onEnded(this);
  }

  private onPeerClose(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.framing.closeStream();
    this.ended('peer closed the stream');
  }

  private sendHeader(version: string | null): void {
    this.streamId = randomBytes(12).toString('hex');
    this.framing.openStream({
      xmlns: NS.server,
      from: this.localDomain,
      to: this.remoteDomain ?? undefined,
      id: this.streamId,
      version: version ?? undefined,
      extra: { 'xmlns:db': NS.dialback },
    });
  }

  private onOpen(attrs: Record<string, string>, name: string): void {
    if (this.state === 'closed') return;
    const from = domainAttr(attrs.from);
    if (from) this.remoteDomain = from;
    const to = attrs.to ? domainAttr(attrs.to) : this.localDomain;
    const hosted = to !== null && this.service.isHosted(to);
    if (hosted) this.localDomain = to;
    const version = attrs.version && /^1\.\d+$/.test(attrs.version) ? '1.0' : null;
    this.sendHeader(version);
    this.state = 'open';
    if (name !== 'stream:stream' || attrs['xmlns:stream'] !== NS.stream) {
      this.close('invalid-namespace', 'expected a stream:stream element');
      return;
    }
    if (attrs.xmlns !== NS.server) {
      this.close('invalid-namespace', 'this port serves jabber:server streams');
      return;
    }
    if (!hosted) {
      this.close('host-unknown', `this server does not serve ${attrs.to}`);
      return;
    }
    // Without XMPP 1.0 there are no stream features, hence no STARTTLS, and
    // we never accept unencrypted federation.
    if (!version) {
      this.close('unsupported-version', 'XMPP 1.0 streams (with STARTTLS) only');
      return;
    }
    this.framing.send(this.features());
  }

  private features(): Element {
    const f = el('stream:features');
    if (!this.framing.secure) {
      f.cnode(el('starttls', { xmlns: NS.tls }, el('required')));
      return f;
    }
    if (this.saslDone) return f;
    this.externalOffered =
      this.remoteDomain !== null && this.service.tls.peerVerified(this.framing, this.remoteDomain);
    if (this.externalOffered) {
      f.cnode(el('mechanisms', { xmlns: NS.sasl }, el('mechanism', null, 'EXTERNAL')));
    }
    f.cnode(el('dialback', { xmlns: NS.dialbackFeature }, el('errors')));
    return f;
  }

  private onElement(stanza: Element): void {
    if (this.state !== 'open') return;
    if (isStanza(stanza)) {
      this.onStanza(stanza);
      return;
    }
    if (stanza.name === 'starttls' && stanza.attrs.xmlns === NS.tls) {
      this.startTls();
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
    if (isStreamElement(stanza, 'error')) {
      this.log.debug('incoming s2s peer sent a stream error', {
        from: this.remoteDomain,
        error: stanza.toString(),
      });
      this.onPeerClose();
      return;
    }
    this.close('unsupported-stanza-type', `<${stanza.name}/> is not expected here`);
  }

  private startTls(): void {
    if (!answerStartTls(this.framing, this.log)) {
      this.close();
      return;
    }
    this.state = 'wait-open';
  }


  private saslFailure(condition: string): void {
    this.framing.send(el('failure', { xmlns: NS.sasl }, el(condition)));
  }

  /** SASL EXTERNAL (RFC 6120 §6.4 for s2s): the certificate is the proof. */
  private onSasl(stanza: Element): void {
    if (stanza.name !== 'auth') {
      this.saslFailure('aborted');
      return;
    }
    if (this.saslDone) {
      this.close('policy-violation', 'already authenticated');
      return;
    }
    if (!this.framing.secure) {
      this.saslFailure('encryption-required');
      return;
    }
    if (stanza.attrs.mechanism !== 'EXTERNAL' || !this.externalOffered) {
      this.saslFailure('invalid-mechanism');
      return;
    }
    const text = stanza.getText().trim();
    let authzid = '';
    if (text !== '' && text !== '=') {
      if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text) || text.length % 4 !== 0) {
        this.saslFailure('incorrect-encoding');
        return;
      }
      authzid = Buffer.from(text, 'base64').toString('utf8');
    }
    // The authorization identity, if given, must be the domain of the header.
    const domain = authzid ? domainAttr(authzid) : this.remoteDomain;
    if (!domain || domain !== this.remoteDomain) {
      this.saslFailure('invalid-authzid');
      return;
    }
    if (this.service.isHosted(domain) || !this.service.tls.peerVerified(this.framing, domain)) {
      this.saslFailure('not-authorized');
      return;
    }
    this.saslDone = true;
    this.authenticate(domain, 'EXTERNAL');
    this.framing.send(el('success', { xmlns: NS.sasl }));
    this.state = 'wait-open';
    this.framing.restart();
  }

  private authenticate(domain: string, method: string): void {
    this.authenticated.add(domain);
    // Stanzas may now be as large as authenticated streams allow.
    this.framing.setLimits(this.service.server.parserLimits);
    if (this.authTimer) clearTimeout(this.authTimer);
    this.authTimer = null;
    this.touch();
    this.log.info('incoming s2s authenticated', { from: domain, to: this.localDomain, method, ip: this.ip });
  }

  /** XEP-0220 §2.2: the originating server asks us to accept its key. */
  private onDialbackResult(stanza: Element): void {
    if (stanza.attrs.type) return; // results only flow the other way on this stream
    const from = domainAttr(stanza.attrs.from);
    const to = domainAttr(stanza.attrs.to);
    const key = stanza.getText().trim();
    if (!from || !to || !key) {
      this.close('improper-addressing', 'db:result needs from, to and a key');
      return;
    }
    if (!this.service.isHosted(to)) {
      this.close('host-unknown', `this server does not serve ${to}`);
      return;
    }
    if (!this.framing.secure) {
      this.close('policy-violation', 'STARTTLS is required before dialback');
      return;
    }
    const reply = (type: 'valid' | 'invalid' | 'error', condition?: string) => {
      if (this.state === 'closed') return;
      const r = el('db:result', { from: to, to: from, type });
      if (condition) r.cnode(el('error', { type: 'cancel' }, el(condition, { xmlns: NS.stanzas })));
      this.framing.send(r);
    };
    if (this.service.isHosted(from)) {
      reply('invalid');
      return;
    }
    if (this.authenticated.has(from)) {
      reply('valid');
      return;
    }
    const pair = `${from} ${to}`;
    if (this.pendingResults.has(pair)) return;
    if (this.service.tls.peerVerified(this.framing, from)) {
      // The certificate already proves the domain (XEP-0344 §2.4): no need to
      // ask the authoritative server.
      this.authenticate(from, 'dialback+certificate');
      reply('valid');
      return;
    }
    if (this.service.secureAuth) {
      this.log.info('refusing dialback without a verified certificate (s2s.secureAuth)', {
        from,
        ip: this.ip,
      });
      reply('error', 'not-authorized');
      this.close('policy-violation', 'a certificate that verifies is required');
      return;
    }
    this.pendingResults.add(pair);
    const streamId = this.streamId;
    this.service.verifyDialback(to, from, streamId, key).then((result) => {
      this.pendingResults.delete(pair);
      if (this.state === 'closed') return;
      if (result === 'valid') {
        this.authenticate(from, 'dialback');
        reply('valid');
      } else if (result === 'invalid') {
        this.log.warn('dialback key refused by the authoritative server', { from, to, ip: this.ip });
        reply('invalid');
      } else {
        reply('error', 'remote-server-not-found');
      }
    });
  }

  /** XEP-0220 §2.3: we are the authoritative server; was this key ours? */
  private onDialbackVerify(stanza: Element): void {
    if (stanza.attrs.type) return;
    const from = domainAttr(stanza.attrs.from);
    const to = domainAttr(stanza.attrs.to);
    const id = stanza.attrs.id;
    if (!from || !to || !id) {
      this.close('improper-addressing', 'db:verify needs from, to and id');
      return;
    }
    if (!this.service.isHosted(to)) {
      this.close('host-unknown', `this server does not serve ${to}`);
      return;
    }
    const valid = this.service.keys.verify(from, to, id, stanza.getText());
    if (!valid) this.log.warn('asked to verify a dialback key we did not make', { claimed: to, asker: from });
    this.framing.send(el('db:verify', { from: to, to: from, id, type: valid ? 'valid' : 'invalid' }));
  }

  private onStanza(stanza: Element): void {
    if (this.authenticated.size === 0) {
      this.close('not-authorized', 'authenticate first');
      return;
    }
    const ns = stanza.attrs.xmlns;
    if (ns !== undefined && ns !== NS.server) {
      this.close('invalid-namespace', 'stanzas must be in jabber:server');
      return;
    }
    delete stanza.attrs.xmlns;
    if (!stanza.attrs.from || !stanza.attrs.to) {
      this.close('improper-addressing', 'stanzas between servers need from and to');
      return;
    }
    const from = Jid.tryParse(stanza.attrs.from);
    // RFC 6120 §4.9.3.9: a from that the stream did not authenticate.
    if (!from || !this.authenticated.has(from.domain)) {
      this.log.warn('s2s stanza from a domain this stream did not authenticate', {
        from: stanza.attrs.from,
        authenticated: [...this.authenticated].join(','),
        ip: this.ip,
      });
      this.close('invalid-from', `${stanza.attrs.from} is not a domain authenticated on this stream`);
      return;
    }
    const to = Jid.tryParse(stanza.attrs.to);
    if (!to) {
      this.service.server.router.bounce(stanza, 'jid-malformed');
      return;
    }
    if (!this.service.isHosted(to.domain)) {
      this.close('host-unknown', `this server does not serve ${to.domain}`);
      return;
    }
    this.touch();
    // Handled as this link's stanza, so a client it floods can slow it down.
    runInbound({ stream: this, barrier: null, seq: 0 }, () =>
      this.service.server.router.route(stanza, { kind: 's2s', domains: this.authenticated }),
    );
  }

  /** Restarts the idle timer: a quiet authenticated stream is closed after s2s.idleTimeout. */
  private touch(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.log.debug('closing idle incoming s2s stream', { from: [...this.authenticated].join(',') });
      this.close();
    }, this.service.server.config.s2s.idleTimeout * 1000);
    this.idleTimer.unref();
  }
}
