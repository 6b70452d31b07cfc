// A host is one domain the process serves (the user domain, msn.<domain>).
// Modules hook its events; the router fires them. Disco identities and
// features are declared by the modules that implement them.
import type { ServerContext } from './context.ts';
import type { Jid } from '../jid/jid.ts';
import type { Element } from '../xml/element.ts';
import type { Logger } from '../log.ts';
import { EventBus } from './events.ts';
import { installIqDispatch } from './iq-dispatch.ts';
import type { ClientSession, Origin } from './session.ts';

export interface StanzaEvent {
  stanza: Element;
  origin: Origin;
  host: Host;
  /** Parsed `to`; for stanzas without one, the sender's bare JID. */
  to: Jid;
  /** Parsed `from` (always set by the router). */
  from: Jid;
}

export interface SessionEvent {
  session: ClientSession;
  host: Host;
}

export interface StreamFeatureEvent {
  session: { secure: boolean; authenticated: boolean; ip: string };
  features: Element[];
  host: Host;
}

export interface Identity {
  category: string;
  type: string;
  name?: string;
}

export type Module = (host: Host) => void | Promise<void>;

export class Host {
  readonly events = new EventBus<StanzaEvent>();
  readonly sessionEvents = new EventBus<SessionEvent>();
  readonly featureEvents = new EventBus<StreamFeatureEvent>();
  /** Disco#info of the domain itself. */
  readonly identities: Identity[] = [];
  readonly features = new Set<string>();
  /** Disco#info identities of user accounts besides account/registered (PEP adds pubsub/pep). */
  readonly accountIdentities: Identity[] = [];
  /** Disco#info features of user accounts (bare JIDs) on this host. */
  readonly accountFeatures = new Set<string>();
  readonly log: Logger;
  /** Whether users log in to this host (false for internal components). */
  readonly userHost: boolean;
  /**
   * Session features a client may switch on inline when it binds with
   * XEP-0386 Bind2, by namespace (advertised as <feature var='ns'/>): the
   * handler gets the requested element (e.g. carbons' <enable/>) on the new,
   * bound session, and returns what goes in <bound/>, if anything. It runs
   * before the session is in the registry and must not wait.
   */
  readonly bind2Features = new Map<string, (session: ClientSession, request: Element) => Element | null>();

  constructor(
    readonly name: string,
    readonly server: ServerContext,
    options: { userHost: boolean },
  ) {
    this.userHost = options.userHost;
    this.log = server.log.child(name);
    installIqDispatch(this.events);
  }

  hook(event: string, handler: (e: StanzaEvent) => boolean | void | Promise<unknown>, priority = 0): () => void {
    return this.events.hook(event, handler, priority);
  }

  private readonly stopHandlers: Array<() => Promise<void>> = [];

  /** Registers work to finish before storage closes (e.g. logging out of MSN). */
  onStop(fn: () => Promise<void>): void {
    this.stopHandlers.push(fn);
  }

  async stop(): Promise<void> {
    for (const fn of this.stopHandlers.reverse()) {
      await fn().catch((err) => this.log.error('stop handler failed', { error: String(err) }));
    }
    this.stopHandlers.length = 0;
  }

  async load(modules: Module[]): Promise<void> {
    for (const m of modules) await m(this);
  }
}
