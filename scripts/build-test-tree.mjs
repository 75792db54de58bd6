#!/usr/bin/env node
/**
 * Writes .test-tree/: the repository with every .ts file transpiled once to a .js sibling, so the
 * ~130 test processes of `make test` start on plain node instead of each loading tsx.
 *
 * Why: measured on the 2-core CI host, `node --import tsx -e 0` costs 0.62 s of CPU against 0.12 s
 * for bare node, and importing src/index.ts through tsx 1.6 s against 0.73 s for its JavaScript:
 * about 170 s of the suite's 811 s of CPU went to transpiling the same files in every process.
 * esbuild (the transpiler tsx itself runs) does all of them here in about a second.
 *
 * The tree mirrors the repository's layout, so paths built from import.meta.dirname (fixtures,
 * docs, dist/cli/*.js) resolve as they do in the checkout:
 *   - every file is hard-linked (same bytes and mode: key fixtures stay 0600, O_NOFOLLOW opens work);
 *     the .ts files too, for the tests that start `node --import tsx <file>.ts`;
 *   - each .ts file also gets <name>.js, with an inline source map, through which the test
 *     reporter (scripts/test-reporter.mjs) shows stack locations as .ts lines;
 *   - node_modules and dist are symlinks to the checkout's, so the CLIs the tests spawn are the
 *     built product and `import 'mcp-pki-auth'` resolves through package.json as it does for users.
 *
 * Usage: node scripts/build-test-tree.mjs   (the Makefile's test targets run it; a rebuild is
 * complete, never incremental, so a deleted source file cannot linger as stale JavaScript).
 */
import { build } from 'esbuild'
import { copyFile, link, mkdir, readdir, rm, symlink } from 'node:fs/promises'
import { dirname, join, relative } from 'node:path'

const ROOT = join(import.meta.dirname, '..')
const OUT = join(ROOT, '.test-tree')
/** Not mirrored: installed or generated trees, and the output itself. */
const SKIP = new Set(['.git', '.test-tree', 'node_modules', 'dist', 'tmp'])
/** Linked as whole directories: read-only inputs the tests use as installed. */
const LINKED = ['node_modules', 'dist']

/** Every file under dir, as paths relative to ROOT. */
async function filesUnder(dir) {
  const out = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (dir === ROOT && SKIP.has(entry.name)) continue
    const path = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...(await filesUnder(path)))
    else if (entry.isFile()) out.push(relative(ROOT, path))
  }
  return out
}

/** A hard link keeps bytes, mode and owner; a copy (with its mode) where links are not allowed. */
async function mirrorFile(file) {
  const target = join(OUT, file)
  await mkdir(dirname(target), { recursive: true })
  try {
    await link(join(ROOT, file), target)
  } catch {
    await copyFile(join(ROOT, file), target)
  }
}

async function main() {
  await rm(OUT, { recursive: true, force: true })
  await mkdir(OUT, { recursive: true })
  const files = await filesUnder(ROOT)
  await Promise.all(files.map(mirrorFile))
  for (const name of LINKED) await symlink(join(ROOT, name), join(OUT, name), 'dir')
  const sources = files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
  // A source x.js beside x.ts would be overwritten through its hard link into the checkout.
  const clashes = sources.filter((f) => files.includes(f.replace(/\.ts$/, '.js')))
  if (clashes.length > 0) throw new Error(`${clashes.join(', ')}: a .js file of the same name exists beside it; rename one`)
  const entryPoints = sources.map((f) => join(ROOT, f))
  await build({
    entryPoints,
    outdir: OUT,
    outbase: ROOT,
    bundle: false,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    sourcemap: 'inline',
    tsconfig: join(ROOT, 'tsconfig.test.json'),
    logLevel: 'warning',
  })
}

main().catch((err) => {
  console.error(`build-test-tree: ${err instanceof Error ? err.message : String(err)}`)
  process.exit(1)
})
