// `npm run bench:startup`: how long `jabberfly start` takes until it
// listens, and its resident memory once idle, for each way of running it:
// the TypeScript sources through tsx (development), the compiled dist/
// (what `npm install` builds and production runs) and the single
// executable (`npm run build:binary`). Builds both into a temp folder
// first. Median of --runs starts each (default 5), loopback, no users.
import { execFileSync, spawn } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuSeconds, rssBytes } from './proc.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({ options: { runs: { type: 'string' }, help: { type: 'boolean' } } });
if (values.help) {
  console.log('npm run bench:startup [-- --runs N]   start time and idle RSS: tsx, dist/, single executable');
  process.exit(0);
}
const runs = Number(values.runs ?? 5);
const work = mkdtempSync(join(tmpdir(), 'jabberfly-startup-'));

function prepare(): Record<string, string[]> {
  // dist/ laid out as an installed package (see test/binary/compiled.test.ts).
  const pkg = join(work, 'pkg');
  mkdirSync(join(pkg, 'bin'), { recursive: true });
  execFileSync(process.execPath, [
    join(ROOT, 'node_modules/typescript/bin/tsc'),
    '-p',
    join(ROOT, 'tsconfig.build.json'),
    '--noCheck',
    '--outDir',
    join(pkg, 'dist'),
  ]);
  copyFileSync(join(ROOT, 'bin/jabberfly.js'), join(pkg, 'bin/jabberfly.js'));
  copyFileSync(join(ROOT, 'package.json'), join(pkg, 'package.json'));
  mkdirSync(join(pkg, 'node_modules'));
  for (const n of readdirSync(join(ROOT, 'node_modules')))
    symlinkSync(join(ROOT, 'node_modules', n), join(pkg, 'node_modules', n));
  execFileSync(
    process.execPath,
    [join(ROOT, 'scripts/build-binary.mjs'), '--out', join(work, 'bin/jabberfly')],
    { stdio: 'ignore' },
  );
  console.log(`single executable: ${(statSync(join(work, 'bin/jabberfly')).size / 1048576).toFixed(1)} MiB`);
  return {
    'tsx (sources)': [process.execPath, join(ROOT, 'bin/jabberfly.js')],
    'compiled dist/': [process.execPath, join(pkg, 'bin/jabberfly.js')],
    'single executable': [join(work, 'bin/jabberfly')],
  };
}

/**
 * Milliseconds from spawn to the "started" log line, the CPU the process
 * used until then (less sensitive to a busy machine than the wall time),
 * and RSS 2 s later.
 */
async function once(argv: string[], dir: string): Promise<{ ms: number; cpuMs: number; rss: number }> {
  mkdirSync(dir, { recursive: true });
  const config = join(dir, 'jabberfly.yaml');
  writeFileSync(
    config,
    'listen: ["127.0.0.1"]\nc2s: { port: 0, directTlsPort: 0 }\ns2s: { port: 0 }\nhttp: { port: 0 }\nhttps: { port: 0 }\n',
  );
  const env = { ...process.env, JABBERFLY_FROM_SOURCE: argv[1]?.startsWith(ROOT) ? '1' : '', HOME: dir };
  const t0 = performance.now();
  const child = spawn(argv[0]!, [...argv.slice(1), 'start', '--config', config], {
    cwd: dir,
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  let cpuMs = 0;
  const ms = await new Promise<number>((resolve, reject) => {
    child.stderr!.on('data', (d) => {
      err += d;
      if (/INFO server: started/.test(err)) {
        cpuMs = cpuSeconds(child.pid!) * 1000;
        resolve(performance.now() - t0);
      }
    });
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${err}`)));
  });
  await new Promise((r) => setTimeout(r, 2000));
  const rss = rssBytes(child.pid!);
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await gone;
  return { ms, cpuMs, rss };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
try {
  const modes = prepare();
  console.log(
    `load average before: ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  console.log('| runtime | first start (ms) | start → listening (ms, median) | CPU until listening (ms, median) | idle RSS (MiB, median) |');
  console.log('|---|---|---|---|---|');
  for (const [name, argv] of Object.entries(modes)) {
    // One folder per runtime: the first start writes the certificate (and
    // the executable extracts its addons); later ones reuse them.
    const dir = join(work, name.replace(/\W+/g, '-'));
    const first = await once(argv, dir);
    const results = [];
    for (let i = 0; i < runs; i++) results.push(await once(argv, dir));
    const ms = median(results.map((r) => r.ms)).toFixed(0);
    const cpu = median(results.map((r) => r.cpuMs)).toFixed(0);
    const rss = (median(results.map((r) => r.rss)) / 1048576).toFixed(0);
    console.log(`| ${name} | ${first.ms.toFixed(0)} | ${ms} | ${cpu} | ${rss} |`);
  }
  console.log(
    `load average after: ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}
