// Runs the MSN simulator on its own, e.g. for manual testing with a client:
//   npm run msn-sim -- --account alice@example.com:secret --account bob@example.com:pw:Bob
//   MSN_SIM_ACCOUNTS="a@x.com:pw,b@x.com:pw" MSN_SIM_NS_PORT=1863 npm run msn-sim
// Flags: --account email:password[:nickname] (repeatable), --friends (make all
// accounts mutual contacts), --ns-port/--dispatch-port/--sb-port/--http-port N,
// --verbose (print every command), --protocols 11,10,9,8 (versions offered;
// default 18 down to 8), --no-offline-messages (a server without OIM).
// Stops on SIGINT/SIGTERM.

import { parseArgs } from 'node:util';
import { MsnSimulator } from './simulator.ts';

function port(value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`bad port: ${value}`);
  return n;
}

const { values } = parseArgs({
  options: {
    account: { type: 'string', multiple: true, default: [] },
    friends: { type: 'boolean', default: false },
    'ns-port': { type: 'string' },
    'dispatch-port': { type: 'string' },
    'sb-port': { type: 'string' },
    'http-port': { type: 'string' },
    verbose: { type: 'boolean', default: false },
    protocols: { type: 'string' },
    'no-offline-messages': { type: 'boolean', default: false },
  },
});

const env = process.env;
const accountSpecs = [
  ...(values.account ?? []),
  ...(env.MSN_SIM_ACCOUNTS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0),
];

const sim = new MsnSimulator({
  notificationPort: port(values['ns-port'] ?? env.MSN_SIM_NS_PORT),
  dispatchPort: port(values['dispatch-port'] ?? env.MSN_SIM_DISPATCH_PORT),
  switchboardPort: port(values['sb-port'] ?? env.MSN_SIM_SB_PORT),
  httpPort: port(values['http-port'] ?? env.MSN_SIM_HTTP_PORT),
  protocols: values.protocols?.split(',').map((v) => {
    const n = Number(v.replace(/^MSNP/i, ''));
    if (!Number.isInteger(n) || n < 8 || n > 18) throw new Error(`bad protocol version: ${v}`);
    return n;
  }),
  offlineMessages: !values['no-offline-messages'],
  log: values.verbose
    ? (e) =>
        console.log(
          `[${e.server}] ${e.direction === 'in' ? '<<' : e.direction === 'out' ? '>>' : '--'} ${e.email ?? '-'} ${e.text}`,
        )
    : undefined,
});

const emails: string[] = [];
for (const spec of accountSpecs) {
  // email:password[:nickname]; the password may not contain ':'.
  const [email, password, ...nick] = spec.split(':');
  if (!email || password === undefined) throw new Error(`bad --account value: ${spec}`);
  sim.addAccount(email, password, nick.length > 0 ? { nickname: nick.join(':') } : {});
  emails.push(email);
}
if (values.friends) {
  for (let i = 0; i < emails.length; i++)
    for (let j = i + 1; j < emails.length; j++) sim.makeFriends(emails[i]!, emails[j]!);
}

const ep = await sim.start();
console.log('MSN simulator running');
console.log(`  nexus:        ${ep.nexusUrl}`);
console.log(`  login:        ${ep.loginUrl}`);
console.log(`  notification: ${ep.nsHost}:${ep.nsPort}`);
console.log(`  dispatch:     ${ep.dispatchHost}:${ep.dispatchPort}`);
console.log(`  switchboard:  ${ep.sbHost}:${ep.sbPort}`);
console.log(
  `  accounts:     ${emails.length > 0 ? emails.join(', ') : '(none; use --account email:password)'}`,
);

let stopping = false;
const shutdown = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: stopping`);
  await sim.stop();
  process.exit(0);
};
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
