// One incoming XEP-0114 component stream (jabber:component:accept): the
// component names its domain in the stream header, proves it knows the
// shared secret with <handshake/>, and from then on its stanzas enter the
// router like any other domain's, each one checked to come from that
// domain. Until the handshake the stream is held to the same limits as an
// unauthenticated s2s stream: the parser's size and depth limits, and
// limits.authTimeout to complete it.
import { randomBytes } from 'node:crypto';
import { Jid } from '../jid/jid.ts';
import { isStanza, isStreamElement } from '../s2s/stanza-names.ts';
import type { TcpFraming } from '../stream/tcp-framing.ts';
import { clone, type Element, el } from '../xml/element.ts';
import { type StreamErrorName, streamErrorElement } from '../xml/errors.ts';
import { NS } from '../xml/namespaces.ts';
import type { ComponentService } from './component-service.ts';
import { handshakeMatches } from './handshake.ts';

type State = 'wait-open' | 'wait-handshake' | 'ready' | 'closed';

export class ComponentStream {
  /** The component's domain once its header named one we know. */
  domain: string | null = null;
  readonly connectedAt = Date.now();
  private state: State = 'wait-open';
  private streamId = '';
  private authTimer: NodeJS.Timeout | null;
  private ending = false;

  constructor(
    private readonly service: ComponentService,
    private readonly framing: TcpFraming,
    private readonly onEnded: (s: ComponentStream) => void,
  ) {
    framing.setHandlers({
      open: (attrs, name) => this.onOpen(attrs, name),
      stanza: (s) => this.onElement(s),
      close: () => this.onPeerClose(),
      error: (condition, text) => this.close(condition, text),
      end: (reason) => this.ended(reason),
    });
    this.authTimer = setTimeout(
      () => this.close('connection-timeout', 'the handshake took too long'),
      service.server.config.limits.authTimeout * 1000,
    );
    this.authTimer.unref();
  }

  get ip(): string {
    return this.framing.remoteAddress;
  }

  get ready(): boolean {
    return this.state === 'ready';
  }

  /** A stanza for the component: a copy without a jabber:client namespace, so it takes the stream's. */
  send(stanza: Element): void {
    if (this.state !== 'ready') return;
    const copy = clone(stanza);
    delete copy.attrs.xmlns;
    this.framing.send(copy);
  }

  /** Whitespace when nothing was written since `before` (ms): keeps NATs open, exposes dead peers. */
  keepaliveIfIdle(before: number): void {
    if (this.state === 'ready' && this.framing.lastWrite < before) this.framing.keepalive();
  }

  close(error?: StreamErrorName, text?: string): void {
    if (this.state === 'closed') return;
    // A stream error needs a stream to travel in (RFC 6120 §4.9.1.2).
    if (this.state === 'wait-open') this.sendHeader(this.service.server.config.domain);
    if (error) {
      this.service.log.info('component stream error', { domain: this.domain, condition: error, text, ip: this.ip });
      this.framing.send(streamErrorElement(error, text));
    }
    this.state = 'closed';
    this.framing.closeStream();
    this.ended('closed by us');
  }

  private ended(reason: string): void {
    this.state = 'closed';
    if (this.authTimer) clearTimeout(this.authTimer);
    this.authTimer = null;
    if (this.ending) return;
    this.ending = true;
    this.service.log.debug('component stream ended', { domain: this.domain, ip: this.ip, reason });
    this.onEnded(this);
  }

  private onPeerClose(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.framing.closeStream();
    this.ended('the component closed the stream');
  }

  private sendHeader(from: string): void {
    this.streamId = randomBytes(12).toString('hex');
    this.framing.openStream({ xmlns: NS.component, from, id: this.streamId });
  }

  private onOpen(attrs: Record<string, string>, name: string): void {
    if (this.state !== 'wait-open') {
      this.close('policy-violation', 'one stream per connection (XEP-0114 has no restarts)');
      return;
    }
    const to = Jid.tryParse(attrs.to);
    const domain = to && !to.local && !to.resource ? to.domain : null;
    const known = domain !== null && this.service.isComponent(domain);
    this.sendHeader(known ? domain : this.service.server.config.domain);
    this.state = 'wait-handshake';
    if (name !== 'stream:stream' || attrs['xmlns:stream'] !== NS.stream) {
      this.close('invalid-namespace', 'expected a stream:stream element');
      return;
    }
    if (attrs.xmlns !== NS.component) {
      this.close('invalid-namespace', `this port serves ${NS.component} streams`);
      return;
    }
    if (!known) {
      this.close('host-unknown', attrs.to ? `${attrs.to} is not a component of this server` : 'name your domain in to');
      return;
    }
    this.domain = domain;
  }

  private onElement(stanza: Element): void {
    if (this.state === 'closed') return;
    if (isStreamElement(stanza, 'error')) {
      this.service.log.info('component sent a stream error', { domain: this.domain, error: stanza.toString() });
      this.onPeerClose();
      return;
    }
    if (this.state === 'wait-handshake') {
      if (stanza.name !== 'handshake') {
        this.close('not-authorized', 'send the handshake first');
        return;
      }
      this.onHandshake(stanza.getText());
      return;
    }
    if (this.state !== 'ready') return;
    if (isStanza(stanza)) {
      this.onStanza(stanza);
      return;
    }
    if (stanza.name === 'handshake') {
      this.close('policy-violation', 'already authenticated');
      return;
    }
    this.close('unsupported-stanza-type', `<${stanza.name}/> is not expected here`);
  }

  private onHandshake(digest: string): void {
    const domain = this.domain!;
    const secret = this.service.secretOf(domain);
    if (secret === undefined || !handshakeMatches(digest, this.streamId, secret)) {
      this.service.log.warn('component handshake refused: wrong secret', { domain, ip: this.ip });
      this.close('not-authorized', 'wrong secret');
      return;
    }
    if (this.authTimer) clearTimeout(this.authTimer);
    this.authTimer = null;
    this.state = 'ready';
    this.framing.send(el('handshake'));
    this.service.attach(this);
  }

  private onStanza(stanza: Element): void {
    const domain = this.domain!;
    const ns = stanza.attrs.xmlns;
    if (ns !== undefined && ns !== NS.component && ns !== NS.client) {
      this.close('invalid-namespace', `stanzas must be in ${NS.component}`);
      return;
    }
    delete stanza.attrs.xmlns;
    // Like Prosody, a missing from means the component's own domain.
    if (stanza.attrs.from === undefined) stanza.attrs.from = domain;
    const from = Jid.tryParse(stanza.attrs.from);
    if (!from || from.domain !== domain) {
      this.close('invalid-from', `${stanza.attrs.from} is not an address of ${domain}`);
      return;
    }
    if (!stanza.attrs.to) {
      this.close('improper-addressing', 'component stanzas need a to address');
      return;
    }
    this.service.server.router.route(stanza, { kind: 'component', domain });
  }
}
