/**
 * The node arguments that start a bench file the way this suite runs: as transpiled JavaScript when
 * the test runs from .test-tree (scripts/build-test-tree.mjs; the bench files there have .js
 * siblings and start their own children without tsx), through tsx when it runs as TypeScript.
 */
const RUNNING_AS_JS = import.meta.url.endsWith('.js')

export function benchCommand(file: string, args: readonly string[]): string[] {
  return RUNNING_AS_JS ? [file.replace(/\.ts$/, '.js'), ...args] : ['--import', 'tsx', file, ...args]
}
