/**
 * Child processes that run an ESM snippet importing this checkout's modules, started the way the
 * suite itself runs: plain node when the tests run as .test-tree's JavaScript (where src/ has .js
 * siblings; scripts/build-test-tree.mjs), through tsx when they run as TypeScript. Loading tsx
 * costs a child ~0.5 s of CPU.
 */
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

const RUNNING_AS_JS = import.meta.url.endsWith('.js')
const ROOT = join(import.meta.dirname, '..', '..')

/** Node's arguments that run `code` as an ES module (then `args`, as process.argv[1…]). */
export function snippetArgs(code: string, args: readonly string[] = []): string[] {
  return [...(RUNNING_AS_JS ? [] : ['--import', 'tsx']), '--input-type=module', '-e', code, ...args]
}

/** The import specifier of src/<path>.js in this tree (tsx maps it to the .ts file). */
export function srcModule(path: string): string {
  return JSON.stringify(pathToFileURL(join(ROOT, 'src', path)).href)
}
