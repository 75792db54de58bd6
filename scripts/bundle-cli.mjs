#!/usr/bin/env node
/**
 * Bundles the installed commands (package.json "bin") from tsc's dist/cli into dist/bin, one file
 * per command plus shared chunks, with their dependencies inside.
 *
 * Why: a command's start-up was mostly module loading. `mcp-allowlist --help` opened 99 files of
 * zod, 84 of yaml and 60 of ours, and cost 0.27-0.41 s of CPU against 0.17-0.18 s bundled (bare
 * node: 0.10 s) on the 2-core CI host. Desktop MCP clients start `mcp-pki-proxy` on every launch,
 * and the test suite starts the commands hundreds of times.
 *
 * Left outside the bundle, loaded from node_modules as before:
 *   - @modelcontextprotocol/* (an optional peer dependency: the user's own SDK version);
 *   - ioredis (loaded with createRequire only when a Redis store is configured);
 *   (prom-client, ws and yaml are bundled, and still loaded on first use: see bundleLoadOnUse.)
 *   - ws's optional native helpers (required in a try/catch).
 * Everything else is inside: a dependency of a dependency (prom-client's @opentelemetry/api) may be
 * installed where dist/bin cannot resolve it.
 * The library (dist/index.js and the other exports) is not bundled: importers get tsc's modules.
 *
 * Usage: node scripts/bundle-cli.mjs   (`make build` and `npm run build` run it after tsc).
 */
import { build } from 'esbuild'
import { existsSync } from 'node:fs'
import { chmod, readFile, readdir, rm } from 'node:fs/promises'
import { basename, join } from 'node:path'

const ROOT = join(import.meta.dirname, '..')
const OUT = join(ROOT, 'dist', 'bin')
const EXTERNAL = ['@modelcontextprotocol/*', 'ioredis', 'bufferutil', 'utf-8-validate']
/**
 * Bundled code still needs `require` for the CommonJS dependencies it carries (commander, ws…);
 * PACKAGE_VERSION's require('../../package.json') resolves from dist/bin as it does from dist/transport.
 */
const BANNER = "import { createRequire as __mcpPkiCreateRequire } from 'node:module'; const require = __mcpPkiCreateRequire(import.meta.url);"

/**
 * dist/internal/load-on-use.js requires prom-client, ws and yaml on first use, through a
 * `require` made by createRequire, which esbuild cannot follow. Without that line its `require`
 * calls are esbuild's own: the modules are bundled, and still run only when first required.
 */
const bundleLoadOnUse = {
  name: 'bundle-load-on-use',
  setup(b) {
    b.onLoad({ filter: /[\\/]internal[\\/]load-on-use\.js$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8')
      const line = 'const require = createRequire(import.meta.url);'
      if (!text.includes(line)) throw new Error(`${args.path}: expected "${line}" (scripts/bundle-cli.mjs)`)
      return { contents: text.replace(line, ''), loader: 'js' }
    })
  },
}

/** tsc's module for a command: dist/cli/bin/<name>.js (a wrapper that checks the SDK) or dist/cli/<name>.js. */
function entryFor(name) {
  const wrapper = join(ROOT, 'dist', 'cli', 'bin', `${name}.js`)
  return existsSync(wrapper) ? wrapper : join(ROOT, 'dist', 'cli', `${name}.js`)
}

async function main() {
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8'))
  const names = Object.keys(pkg.bin)
  for (const [name, path] of Object.entries(pkg.bin)) {
    if (path !== `./dist/bin/${name}.js`) throw new Error(`package.json bin ${name} must be ./dist/bin/${name}.js (it is ${path})`)
  }
  const entryPoints = Object.fromEntries(names.map((name) => [name, entryFor(name)]))
  for (const [name, entry] of Object.entries(entryPoints)) {
    if (!existsSync(entry)) throw new Error(`${name}: ${entry} is missing: run tsc -p tsconfig.json first`)
  }
  await rm(OUT, { recursive: true, force: true })
  await build({
    entryPoints,
    outdir: OUT,
    bundle: true,
    splitting: true,
    chunkNames: 'chunk-[hash]',
    format: 'esm',
    platform: 'node',
    target: 'node20',
    external: EXTERNAL,
    banner: { js: BANNER },
    legalComments: 'inline',
    plugins: [bundleLoadOnUse],
    logLevel: 'warning',
  })
  for (const file of await readdir(OUT)) {
    if (names.includes(basename(file, '.js'))) await chmod(join(OUT, file), 0o755)
  }
}

main().catch((err) => {
  console.error(`bundle-cli: ${err instanceof Error ? err.message : String(err)}`)
  process.exit(1)
})
