#!/usr/bin/env node
// `npm run build:binary`: one executable for linux-x64 (a Node 20 single
// executable application) that needs no node, no node_modules and no
// network. esbuild bundles src/ into one CommonJS file; the native addons
// (classic-level, sharp + libvips) and Converse.js's files go in as SEA
// assets (src/runtime/bundled-assets.ts extracts and loads them); postject
// injects the blob into a copy of the running node binary.
// Usage: node scripts/build-binary.mjs [--out FILE]   (default build/jabberfly)
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

const root = new URL('..', import.meta.url).pathname;
const require = createRequire(join(root, 'package.json'));
const { values } = parseArgs({ options: { out: { type: 'string' } } });
const out = values.out ?? join(root, 'build', 'jabberfly');
const work = join(dirname(out), 'sea-work');
mkdirSync(work, { recursive: true });
const started = Date.now();

if (process.platform !== 'linux' || process.arch !== 'x64') {
  console.error(`build:binary makes a linux-x64 executable; this is ${process.platform}-${process.arch}`);
  process.exit(1);
}
const major = Number(process.versions.node.split('.')[0]);
if (major < 20) {
  console.error('build:binary needs Node 20 or later');
  process.exit(1);
}

// --- the assets ---------------------------------------------------------
// Packages whose exports hide package.json are found where npm installs them.
const pkgDir = (name) => {
  const dir = join(root, 'node_modules', name);
  if (!existsSync(join(dir, 'package.json'))) {
    console.error(`${name} is not installed (npm ci first)`);
    process.exit(1);
  }
  return dir;
};
const classicLevelNode = join(pkgDir('classic-level'), 'prebuilds', 'linux-x64', 'classic-level.node');
const sharpLib = join(pkgDir('@img/sharp-linux-x64'), 'lib');
const sharpNode = join(
  sharpLib,
  readdirSync(sharpLib).find((f) => f.endsWith('.node')),
);
const vipsLib = join(pkgDir('@img/sharp-libvips-linux-x64'), 'lib');
const vipsSo = join(
  vipsLib,
  readdirSync(vipsLib).find((f) => f.startsWith('libvips-cpp.so')),
);
// sharp.node finds libvips through its RPATH ($ORIGIN/../../sharp-libvips-linux-x64/lib):
// the extracted layout keeps the two packages side by side as in node_modules.
const files = {
  'addon-classic-level': [classicLevelNode, 'addons/classic-level.node'],
  'addon-sharp': [sharpNode, `addons/@img/sharp-linux-x64/lib/${basename(sharpNode)}`],
  libvips: [vipsSo, `addons/@img/sharp-libvips-linux-x64/lib/${basename(vipsSo)}`],
};

// Converse's built files in one pack, without source maps and the unminified builds the page never loads.
const converseDist = join(pkgDir('converse.js'), 'dist');
const skip = (rel) => rel.endsWith('.map') || ['converse.js', 'converse.css', 'website.css'].includes(rel);
const packFile = join(work, 'converse.pack');
writeFileSync(packFile, pack(converseDist, skip));

const hash = createHash('sha256');
for (const [, [file]] of Object.entries(files)) hash.update(readFileSync(file));
hash.update(readFileSync(packFile));
const manifest = {
  id: hash.digest('hex').slice(0, 16),
  files: Object.fromEntries(Object.entries(files).map(([k, [, rel]]) => [k, rel])),
  addons: { 'classic-level': 'addon-classic-level', sharp: 'addon-sharp' },
  packs: { converse: 'converse' },
};

// --- the bundle ---------------------------------------------------------
const bundledAssets = join(root, 'src', 'runtime', 'bundled-assets.ts');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const bundle = join(work, 'jabberfly.cjs');
const nativeAddons = {
  name: 'native-addons-from-assets',
  setup(b) {
    // classic-level finds its addon with node-gyp-build(__dirname).
    b.onLoad({ filter: /[\\/]classic-level[\\/]binding\.js$/ }, () => ({
      contents: `module.exports = require(${JSON.stringify(bundledAssets)}).loadAddon('classic-level');`,
      loader: 'js',
      resolveDir: root,
    }));
    // sharp's CommonJS build, whose plain require() of its addon esbuild can see
    // (the ESM build goes through createRequire).
    b.onResolve({ filter: /^sharp$/ }, () => ({ path: join(pkgDir('sharp'), 'dist', 'index.cjs') }));
    // sharp.cjs picks the platform's addon package: here it is the carried one.
    b.onLoad({ filter: /[\\/]sharp[\\/]dist[\\/]sharp\.cjs$/ }, () => ({
      contents: `module.exports = require(${JSON.stringify(bundledAssets)}).loadAddon('sharp');`,
      loader: 'js',
      resolveDir: root,
    }));
  },
};
await build({
  entryPoints: [join(root, 'src', 'main.ts')],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  outfile: bundle,
  logLevel: 'warning',
  legalComments: 'none',
  minifySyntax: true,
  plugins: [nativeAddons],
  // The bundle has no package.json or node_modules beside it.
  define: {
    JABBERFLY_VERSION: JSON.stringify(pkg.version),
    JABBERFLY_ASSETS: JSON.stringify(manifest),
    'import.meta.url': 'importMetaUrl',
  },
  // Optional packages the bundle probes for (ws's bufferutil, sharp's version
  // files) are not carried: they fail as a missing module would, instead of
  // reaching the executable's builtin-only require, which warns on stderr.
  banner: {
    js: [
      'const importMetaUrl = require("node:url").pathToFileURL(__filename).href;',
      'require = ((builtin, isBuiltin) => (id) => {',
      '  if (isBuiltin(id)) return builtin(id);',
      '  throw Object.assign(new Error(`Cannot find module \'${id}\' (not carried in the executable)`), { code: "MODULE_NOT_FOUND" });',
      '})(require, require("node:module").isBuiltin);',
    ].join('\n'),
  },
});

// --- the executable -----------------------------------------------------
const seaConfig = join(work, 'sea-config.json');
const blob = join(work, 'sea.blob');
writeFileSync(
  seaConfig,
  JSON.stringify({
    main: bundle,
    output: blob,
    disableExperimentalSEAWarning: true,
    useCodeCache: true,
    assets: {
      ...Object.fromEntries(Object.entries(files).map(([k, [file]]) => [k, file])),
      converse: packFile,
    },
  }),
);
execFileSync(process.execPath, ['--experimental-sea-config', seaConfig], { stdio: 'inherit' });
copyFileSync(process.execPath, out);
execFileSync(
  process.execPath,
  [
    require.resolve('postject/dist/cli.js'),
    out,
    'NODE_SEA_BLOB',
    blob,
    '--sentinel-fuse',
    'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2',
  ],
  { stdio: ['ignore', 'ignore', 'inherit'] },
);
const mib = (statSync(out).size / 1048576).toFixed(1);
console.log(
  `built ${relative(process.cwd(), out) || out}: ${mib} MiB in ${((Date.now() - started) / 1000).toFixed(1)} s`,
);

/** [u32 index length][JSON {path: [offset, length]}][bytes] of every file under dir. */
function pack(dir, skipFile) {
  const index = {};
  const chunks = [];
  let offset = 0;
  const walk = (d) => {
    for (const name of readdirSync(d).sort()) {
      const full = join(d, name);
      const rel = relative(dir, full).split('\\').join('/');
      if (statSync(full).isDirectory()) walk(full);
      else if (!skipFile(rel)) {
        const data = readFileSync(full);
        index[rel] = [offset, data.length];
        chunks.push(data);
        offset += data.length;
      }
    }
  };
  walk(dir);
  const head = Buffer.from(JSON.stringify(index));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(head.length);
  return Buffer.concat([len, head, ...chunks]);
}
