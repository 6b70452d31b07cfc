// Optional parts of the server that own listeners or connections beyond
// c2s (HTTP/WebSocket, s2s, XEP-0114 components). Each factory may return null when disabled in
// the configuration. Order matters for start (listed order) and stop (reverse):
// the admin channel comes last, so the CLI reaches a server that is fully up.
import { acmeServiceFactory } from './acme/acme-service.ts';
import { adminServiceFactory } from './admin/admin-service.ts';
import { componentServiceFactory } from './component/component-service.ts';
import { s2sServiceFactory } from './s2s/s2s-service.ts';
import type { Server } from './server.ts';
import { httpServiceFactory } from './websocket/http-service.ts';

export interface Service {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export type ServiceFactory = (server: Server) => Service | null;

export const serviceFactories: ServiceFactory[] = [
  s2sServiceFactory,
  componentServiceFactory,
  httpServiceFactory,
  // After the listeners that answer its challenges.
  acmeServiceFactory,
  adminServiceFactory,
];
