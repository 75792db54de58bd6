/**
 * Imports a documented TypeScript snippet in this process, as `npx tsx` would run it for a user:
 * esbuild (tsx's own transpiler) strips the types, and the JavaScript is written beside `file`
 * and imported natively. The suite runs on transpiled JavaScript (scripts/build-test-tree.mjs),
 * so there is no TypeScript loader in the test process; the snippet's imports of this checkout
 * (pointed at src/…/*.js) load the same module instances the test itself uses.
 */
import { transform } from 'esbuild'
import { writeFile } from 'node:fs/promises'
import { pathToFileURL } from 'node:url'

export async function importTypeScript<T>(file: string, code: string): Promise<T> {
  const { code: js } = await transform(code, { loader: 'ts', format: 'esm', target: 'node20', sourcefile: file })
  const out = file.replace(/\.m?ts$/, '') + '.mjs'
  await writeFile(out, js)
  return (await import(pathToFileURL(out).href)) as T
}
