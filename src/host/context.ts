// What a feature (module, store, the MSN gateway) may use of the server:
// its configuration, logger, router, sessions, hosts and stores. Features
// are written against this narrow interface, not the `Server` class, so one
// can be read, tested and moved alone (Prosody's `module:` API plays the
// same role); only the composition root (`server.ts`, `main.ts`) and the
// listeners that own sockets see the whole `Server`.
import type { StatusSections } from '../admin/status-sections.ts';
import type { AuthThrottle } from '../auth/throttle.ts';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import type { Router } from '../router/router.ts';
import type { SessionRegistry } from '../router/session-registry.ts';
import type { AccountStore } from '../storage/accounts.ts';
import type { StorageBackend, StoreChanges } from '../storage/types.ts';
import type { Host } from './host.ts';

/** A typed store built over the backend; one shared instance per class per server. */
export type StoreClass<T> = new (backend: StorageBackend, ctx: ServerContext) => T;

export interface ServerContext {
  readonly config: Config;
  readonly log: Logger;
  readonly router: Router;
  readonly sessions: SessionRegistry;
  /** Every domain this process serves, by name. */
  readonly hosts: ReadonlyMap<string, Host>;
  readonly accounts: AccountStore;
  readonly storage: StorageBackend;
  /** Failed-login counting, delays and blocks, shared by every SASL path (auth/throttle.ts). */
  readonly authThrottle: AuthThrottle;
  /** A random secret kept in storage, for values that must be stable but unguessable (decoy SCRAM salts). */
  readonly serverSecret: Buffer;
  /** Epoch ms when the server started (uptime, XEP-0012 of the server). */
  readonly startedAt: number;
  /** One shared instance per store class, so modules and the gateway agree. */
  store<T>(ctor: StoreClass<T>): T;
  /**
   * For stores that keep per-user entries in memory: announce changes to,
   * and follow those of, the other nodes of a cluster (a no-op otherwise).
   */
  readonly storeChanges: StoreChanges;
  /** Sections of `jabberfly status` (admin channel); a feature adds its own. */
  readonly statusSections: StatusSections;
}
