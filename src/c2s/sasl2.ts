// XEP-0388 SASL2 on client streams, with what it carries inline:
// XEP-0386 Bind2 (a resource bound and session features switched on in the
// same round trip: carbons and other host features, XEP-0352 client state,
// XEP-0198 stream management), XEP-0198 resumption, and XEP-0484 FAST
// tokens (issued, rotated, invalidated; logins with them through the HT-*
// mechanisms). Offered on encrypted streams only (XEP-0388 §3). The same
// mechanism exchanges as legacy SASL (sasl.ts, sasl-ht.ts) do the checking,
// so throttling, decoy answers and the failure log are the same; only the
// framing differs, and there is no stream restart: <success/> is followed
// at once by the new stream features.
//
// Nothing reaches the client before its <success/>: the work that waits
// (issuing a token, the archive's metadata, a resumption) is done first,
// then the resource is bound and <success/> written in the same turn,
// before the session enters the registry.
import { createHmac, randomBytes } from 'node:crypto';
import type { ChannelBinding } from '../auth/channel-binding.ts';
import type { ServerContext } from '../host/context.ts';
import type { Host } from '../host/host.ts';
import type { ClientSession } from '../host/session.ts';
import { Jid, JidError } from '../jid/jid.ts';
import { archiveMetadata } from '../mam/serve.ts';
import { USER_ARCHIVE } from '../modules/mam.ts';
import { OFFLINE_FROM_ARCHIVE } from '../modules/offline.ts';
import { type FastMatch, FastTokenStore } from '../storage/fast-tokens.ts';
import { type Element, el } from '../xml/element.ts';
import { NS } from '../xml/namespaces.ts';
import { createExchange, offeredMechanisms, type SaslExchange, type SaslFailure } from './sasl.ts';
import { createHtExchange, type HtStep, offeredFastMechanisms } from './sasl-ht.ts';

/** Longest <user-agent id/> kept (XEP-0388 wants a UUID: 36 characters). */
const MAX_AGENT_ID = 128;
/** Longest <software/>, <device/> or Bind2 <tag/> taken. */
const MAX_AGENT_TEXT = 128;

/** What SASL2 needs of the client stream it runs on (C2SSession). */
export interface Sasl2Session extends ClientSession {
  readonly binding: ChannelBinding;
  readonly closed: boolean;
  /** Writes a negotiation element to the transport at once (not a stanza: no barrier, no counting). */
  writeNegotiation(element: Element): void;
  /** A failed attempt on this stream; the stream closes after limits.maxAuthFailures. */
  authFailed(): void;
  /** The account is authenticated; the stream stays unbound. */
  authenticatedAs(user: string): void;
  /** The stream features of the authenticated stream (bound or not). */
  streamFeatures(): Element;
  /**
   * Binds `resource` (stable per client, Bind2) and calls `announce` with
   * the JID once the session is bound but before it is in the registry, so
   * what `announce` writes (the <success/>) comes before any stanza.
   */
  bindInline(resource: string, announce: (jid: Jid) => void): Jid;
  /** XEP-0198 <enable/> on the bound session: the <enabled/> or <failed/>. Absent without stream management. */
  enableStreamManagement?(enable: Element): Element;
  /**
   * XEP-0198 <resume/> inline: the <failed/>, or null when the old session
   * took this transport over after `announce` (with <resumed/> and the
   * resumed session's full JID) wrote what precedes the resent stanzas.
   */
  resumeInline?(resume: Element, announce: (resumed: Element, jid: Jid, features: Element) => void): Promise<Element | null>;
  /** XEP-0352: the session's starting state. */
  setClientState?(active: boolean): void;
}

interface AuthRequest {
  mechanism: string;
  agent: { id: string; software?: string; device?: string } | null;
  bind?: Element;
  /** <fast/>: the client authenticates with a token. */
  fast?: Element;
  /** <request-token mechanism/>: the client wants a token. */
  requestToken?: string;
  resume?: Element;
}

export class Sasl2 {
  private exchange: SaslExchange | null = null;
  private request: AuthRequest | null = null;
  private busy = false;
  private done = false;

  constructor(
    private readonly session: Sasl2Session,
    private readonly server: ServerContext,
    private readonly host: Host,
  ) {}

  /** The <authentication/> stream feature, or null where SASL2 is not offered. */
  static feature(server: ServerContext, host: Host, secure: boolean, binding: ChannelBinding, resumable: boolean): Element | null {
    if (!server.config.sasl2.enabled || !secure) return null;
    const auth = el('authentication', { xmlns: NS.sasl2 });
    for (const m of offeredMechanisms(true, binding)) auth.cnode(el('mechanism', null, m));
    const inline = el('inline');
    const bindFeatures = [...host.bind2Features.keys()];
    bindFeatures.push(NS.csi);
    if (resumable) bindFeatures.push(NS.sm);
    inline.cnode(el('bind', { xmlns: NS.bind2 }, el('inline', null, ...bindFeatures.map((v) => el('feature', { var: v })))));
    if (server.config.fast.enabled) {
      inline.cnode(el('fast', { xmlns: NS.fast }, ...offeredFastMechanisms(binding).map((m) => el('mechanism', null, m))));
    }
    if (resumable) inline.cnode(el('sm', { xmlns: NS.sm }));
    auth.cnode(inline);
    return auth;
  }

  /** An <authenticate/>, <response/> or <abort/> in urn:xmpp:sasl:2. */
  onElement(element: Element): void {
    if (this.done) {
      // XEP-0388 §6.9: once authenticated, another authentication is a stream error.
      this.session.close('policy-violation', 'already authenticated');
      return;
    }
    if (this.busy) {
      this.session.close('policy-violation', 'SASL2 element while one is pending');
      return;
    }
    switch (element.name) {
      case 'authenticate':
        return this.onAuthenticate(element);
      case 'response':
        if (!this.exchange) return this.failure('malformed-request', 'no authentication in progress');
        return this.step(element.getText().trim());
      case 'abort':
        this.exchange = null;
        this.request = null;
        return this.failure('aborted');
      default:
        this.session.close('unsupported-stanza-type', `<${element.name}/> is not a SASL2 element`);
    }
  }

  private onAuthenticate(element: Element): void {
    const mechanism = element.attrs.mechanism ?? '';
    const request: AuthRequest = { mechanism, agent: readAgent(element.getChild('user-agent')) };
    for (const child of element.getChildElements()) {
      const ns = child.attrs.xmlns;
      if (ns === NS.bind2 && child.name === 'bind') request.bind = child;
      else if (ns === NS.fast && child.name === 'fast') request.fast = child;
      else if (ns === NS.fast && child.name === 'request-token') request.requestToken = child.attrs.mechanism ?? '';
      else if (ns === NS.sm && child.name === 'resume') request.resume = child;
    }
    const { server, session } = this;
    const ctx = {
      domain: this.host.name,
      secure: session.secure,
      accounts: server.accounts,
      ip: session.ip,
      throttle: server.authThrottle,
      log: server.log,
      decoySecret: server.serverSecret,
      binding: session.binding,
      sasl2: true,
      plus: true,
    };
    const fastCount = request.fast?.attrs.count;
    this.exchange =
      createExchange(mechanism, ctx) ??
      (server.config.fast.enabled
        ? createHtExchange(mechanism, ctx, {
            store: server.store(FastTokenStore),
            agentId: request.agent?.id ?? null,
            count: fastCount !== undefined && /^\d{1,15}$/.test(fastCount) ? Number(fastCount) : null,
          })
        : null);
    if (!this.exchange) return this.failure('invalid-mechanism', `${mechanism || '(none)'} is not offered`);
    this.request = request;
    const initial = element.getChild('initial-response');
    this.step(initial ? initial.getText().trim() : '');
  }

  private step(text: string): void {
    const exchange = this.exchange!;
    let data: Buffer;
    if (text === '' || text === '=') data = Buffer.alloc(0);
    else if (/^[A-Za-z0-9+/]+={0,2}$/.test(text) && text.length % 4 === 0) data = Buffer.from(text, 'base64');
    else return this.failure('incorrect-encoding');
    this.busy = true;
    exchange
      .step(data)
      .then(async (step: HtStep) => {
        if (this.session.closed) return;
        if (step.kind === 'challenge') {
          this.busy = false;
          this.session.writeNegotiation(el('challenge', { xmlns: NS.sasl2 }, Buffer.from(step.data).toString('base64')));
        } else if (step.kind === 'failure') {
          this.busy = false;
          this.failure(step.condition, step.text);
        } else {
          this.done = true;
          await this.succeed(step.user, step.data, step.fast);
        }
      })
      .catch((err) => {
        this.server.log.error('SASL2 error', { error: String((err as Error)?.stack ?? err) });
        if (this.done) this.session.close('internal-server-error');
        else {
          this.busy = false;
          this.failure('temporary-auth-failure');
        }
      });
  }

  private failure(condition: SaslFailure, text?: string): void {
    this.exchange = null;
    this.request = null;
    this.session.writeNegotiation(
      el('failure', { xmlns: NS.sasl2 }, el(condition, { xmlns: NS.sasl }), text ? el('text', null, text) : null),
    );
    if (condition !== 'aborted') this.session.authFailed();
  }

  /** After a successful exchange: tokens, resumption, binding, then <success/> and the new features. */
  private async succeed(user: string, additional: string | Buffer | undefined, fastUsed: FastMatch | undefined): Promise<void> {
    const { session, server, host } = this;
    const request = this.request!;
    this.exchange = null;
    this.request = null;
    session.authenticatedAs(user);
    const bare = `${user}@${host.name}`;
    const inSuccess: Element[] = [];
    const token = await this.tokenWork(bare, request, fastUsed);
    if (session.closed) return;
    const success = (jid: string, extra: Element[]) =>
      el(
        'success',
        { xmlns: NS.sasl2 },
        additional ? el('additional-data', null, Buffer.from(additional).toString('base64')) : null,
        el('authorization-identifier', null, jid),
        ...extra,
        token,
      );

    if (request.resume && session.resumeInline) {
      const failed = await session.resumeInline(request.resume, (resumed, jid, features) => {
        session.writeNegotiation(success(jid.toString(), [resumed]));
        session.writeNegotiation(features);
      });
      if (failed === null) return;
      // XEP-0386 §3: a failed resumption is reported, and binding goes on.
      inSuccess.push(failed);
    } else if (request.resume) {
      inSuccess.push(el('failed', { xmlns: NS.sm }, el('feature-not-implemented', { xmlns: NS.stanzas })));
    }
    if (session.closed) return;

    if (!request.bind) {
      session.writeNegotiation(success(bare, inSuccess));
      session.writeNegotiation(session.streamFeatures());
      return;
    }
    const bindRequest = request.bind;
    // The archive as it is when the resource is bound (XEP-0386 §3): the client syncs from its end.
    const metadata = server.config.mam.enabled ? await archiveMetadata(server.storage.archive(USER_ARCHIVE), bare) : null;
    if (session.closed) return;
    const resource = this.resourceFor(bare, bindRequest.getChildText('tag') ?? undefined, request.agent?.id);
    session.bindInline(resource, (jid) => {
      // Offline messages that are in the archive come by MAM instead (XEP-0386 §3).
      if (metadata) session.data.set(OFFLINE_FROM_ARCHIVE, true);
      const bound = el('bound', { xmlns: NS.bind2 }, metadata);
      for (const child of bindRequest.getChildElements()) {
        const ns = child.attrs.xmlns;
        if (ns === NS.sm && child.name === 'enable') {
          bound.cnode(session.enableStreamManagement?.(child) ?? el('failed', { xmlns: NS.sm }, el('feature-not-implemented', { xmlns: NS.stanzas })));
        } else if (ns === NS.csi && (child.name === 'active' || child.name === 'inactive')) {
          session.setClientState?.(child.name === 'active');
        } else if (ns) {
          const feature = host.bind2Features.get(ns);
          const answer = feature?.(session, child);
          if (answer) bound.cnode(answer);
        }
      }
      session.writeNegotiation(success(jid.toString(), [...inSuccess, bound]));
      session.writeNegotiation(session.streamFeatures());
    });
  }

  /**
   * FAST token work after a successful login (XEP-0484): an invalidation,
   * a token the client asked for, or a fresh one when the token it used is
   * due for rotation. Returns the <token/> to put in <success/>.
   */
  private async tokenWork(bare: string, request: AuthRequest, used: FastMatch | undefined): Promise<Element | null> {
    const { config } = this.server;
    if (!config.fast.enabled) return null;
    const store = this.server.store(FastTokenStore);
    const agent = request.agent;
    const invalidate = request.fast && (request.fast.attrs.invalidate === 'true' || request.fast.attrs.invalidate === '1');
    if (used && invalidate && agent) await store.invalidate(bare, agent.id);
    let mechanism: string | null = null;
    if (request.requestToken !== undefined) {
      if (!offeredFastMechanisms(this.session.binding).includes(request.requestToken)) {
        this.server.log.info('FAST token not issued: mechanism not offered', { user: bare, mechanism: request.requestToken });
      } else mechanism = request.requestToken;
    } else if (used && !invalidate && Date.now() - used.record.issued >= config.fast.rotateAfter * 1000) {
      mechanism = used.record.mechanism;
    }
    if (!mechanism) return null;
    if (!agent) {
      // Tokens are per client installation (XEP-0484 §4): without an id there is nothing to bind one to.
      this.server.log.info('FAST token not issued: no user-agent id', { user: bare });
      return null;
    }
    const issued = await store.issue(bare, agent, mechanism, config.fast.tokenLifetime * 1000, config.fast.maxClientsPerUser);
    this.server.log.info('FAST token issued', { user: bare, mechanism, rotation: request.requestToken === undefined });
    return el('token', { xmlns: NS.fast, token: issued.token, expiry: new Date(issued.expires).toISOString() });
  }

  /**
   * The Bind2 resource: "<tag>/<id>" (XEP-0386 §3.1), the id stable for one
   * client installation (derived from the user-agent id, which it does not
   * reveal), so a client that reconnects replaces its own old session.
   */
  private resourceFor(bare: string, tag: string | undefined, agentId: string | undefined): string {
    const id = agentId
      ? createHmac('sha256', this.server.serverSecret).update(`bind2\u0000${bare}\u0000${agentId}`).digest('base64url').slice(0, 12)
      : randomId();
    const cleanTag = tag?.trim().slice(0, MAX_AGENT_TEXT);
    if (cleanTag) {
      try {
        return Jid.of('x', 'x', `${cleanTag}/${id}`).resource;
      } catch (err) {
        if (!(err instanceof JidError)) throw err;
      }
    }
    return id;
  }
}

function randomId(): string {
  return randomBytes(9).toString('base64url');
}

function readAgent(agent: Element | undefined): AuthRequest['agent'] {
  const id = agent?.attrs.id?.trim();
  if (!agent || !id || id.length > MAX_AGENT_ID || /[\u0000-\u001f]/.test(id)) return null;
  const text = (name: string) => agent.getChildText(name)?.trim().slice(0, MAX_AGENT_TEXT) || undefined;
  return { id, software: text('software'), device: text('device') };
}
