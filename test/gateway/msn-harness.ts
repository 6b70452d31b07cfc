// The MSN side of transport tests: the simulator plus MsnSession buddies,
// and a jabberfly server whose transport points at the simulator.
import { MsnSession } from '../../src/msnp/index.ts';
import type { MsnSessionEvents } from '../../src/msnp/types.ts';
import { MsnSimulator, type SimulatorEndpoints, type SimulatorOptions } from '../msn-sim/simulator.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

export interface MsnWorld {
  sim: MsnSimulator;
  endpoints: SimulatorEndpoints;
  ts: TestServer;
  /** An MSN client (MsnSession) on the simulator; `protocols` pins its versions (default: all). */
  buddy(email: string, password: string, protocols?: string[]): Promise<MsnSession>;
  stop(): Promise<void>;
}

type ServerOverrides = Parameters<typeof startServer>[0];

export async function startMsnWorld(
  setup: (sim: MsnSimulator) => void,
  overrides: ServerOverrides = {},
  simOptions: SimulatorOptions = {},
): Promise<MsnWorld> {
  const sim = new MsnSimulator(simOptions);
  setup(sim);
  const endpoints = await sim.start();
  const ts = await startServer({
    ...overrides,
    msn: {
      enabled: true,
      server: `127.0.0.1:${endpoints.dispatchPort}`,
      nexus: endpoints.nexusUrl,
      ...overrides?.msn,
    },
  });
  const buddies: MsnSession[] = [];
  return {
    sim,
    endpoints,
    ts,
    async buddy(email, password, protocols?: string[]) {
      const s = new MsnSession({
        email,
        password,
        protocols,
        server: `127.0.0.1:${endpoints.nsPort}`,
        nexusUrl: endpoints.nexusUrl,
        reconnect: { initialDelay: 100, maxDelay: 500 },
      });
      s.on('error', () => {});
      await s.login();
      buddies.push(s);
      return s;
    },
    async stop() {
      await Promise.all(buddies.map((b) => b.logout().catch(() => {})));
      await ts.stop();
      await sim.stop();
    },
  };
}

/** Resolves with the next event of that name matching pred. */
export function nextEvent<K extends keyof MsnSessionEvents>(
  s: MsnSession,
  name: K,
  pred: (...args: MsnSessionEvents[K]) => boolean = () => true,
  ms = 8000,
): Promise<MsnSessionEvents[K][0]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      s.off(name, handler as never);
      reject(new Error(`timed out waiting for MSN event ${String(name)}`));
    }, ms);
    const handler = (...args: MsnSessionEvents[K]) => {
      if (!pred(...args)) return;
      clearTimeout(timer);
      s.off(name, handler as never);
      resolve(args[0]);
    };
    s.on(name, handler as never);
  });
}

import { xml } from '@xmpp/client';
import { connect, type TestClient } from '../helpers/xmpp-client.ts';

/** A local user online (roster fetched, available) and registered with the transport as `email`. */
export async function registeredUser(world: MsnWorld, user: string, email: string, password: string): Promise<TestClient> {
  await world.ts.addUser(user, 'pw');
  const c = await connect({ port: world.ts.port, username: user, password: 'pw', resource: 'desk' });
  await c.send(xml('iq', { type: 'get', id: 'roster' }, xml('query', { xmlns: 'jabber:iq:roster' })));
  await c.waitFor((s) => s.attrs.id === 'roster', 'roster');
  await c.send(xml('presence'));
  await c.send(
    xml(
      'iq',
      { type: 'set', id: 'reg', to: world.ts.config.msn.domain },
      xml('query', { xmlns: 'jabber:iq:register' }, xml('username', {}, email), xml('password', {}, password)),
    ),
  );
  const r = await c.waitFor((s) => s.attrs.id === 'reg', 'registration result', 10000);
  if (r.attrs.type !== 'result') throw new Error(`registration failed: ${r.toString()}`);
  await c.waitFor(
    (s) => s.is('presence') && s.attrs.from === world.ts.config.msn.domain && !s.attrs.type,
    'gateway online',
    10000,
  );
  return c;
}

/** Resolves when the simulator logs a line (command in/out, or a service's note) matching `pattern`. */
export function simLogs(world: MsnWorld, pattern: RegExp, ms = 15000): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      world.sim.off('log', onLog);
      reject(new Error(`timed out waiting for the simulator to log ${pattern}`));
    }, ms);
    const onLog = (e: { text: string }) => {
      if (!pattern.test(e.text)) return;
      clearTimeout(timer);
      world.sim.off('log', onLog);
      resolve(e.text);
    };
    world.sim.on('log', onLog);
  });
}
