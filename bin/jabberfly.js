#!/usr/bin/env node
// Production runs the compiled JavaScript in dist/, built by `npm run build`
// (which `npm install` runs as the prepare script). Without dist/ (a
// checkout installed with --ignore-scripts, as CI does), or when src/ was
// edited after the last build, the TypeScript sources run through tsx, a
// development dependency; JABBERFLY_FROM_SOURCE=1 asks for that explicitly.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const compiled = `${root}dist/main.js`;
const sources = `${root}src`;

/** Newest modification time under a folder (the sources are ~150 files: a millisecond). */
function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = `${dir}/${e.name}`;
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

let useCompiled = existsSync(compiled) && !process.env.JABBERFLY_FROM_SOURCE;
if (useCompiled && existsSync(sources) && newest(sources) > statSync(compiled).mtimeMs) {
  process.stderr.write('jabberfly: src/ is newer than dist/ (run `npm run build`); running the sources through tsx\n');
  useCompiled = false;
}
if (useCompiled) {
  // Stack traces in the log point at src/ lines.
  process.setSourceMapsEnabled(true);
  await import(compiled);
} else {
  try {
    const { register } = await import('tsx/esm/api');
    register();
  } catch {
    process.stderr.write('jabberfly: not built: run `npm run build` (or `npm install`, which builds)\n');
    process.exit(1);
  }
  await import('../src/main.ts');
}
