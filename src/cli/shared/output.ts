/**
 * Shared output and exit handling for the CLI tools.
 *
 * Conventions: results go to stdout; problems go to stderr as `error: <message>` (plus an
 * optional `hint: <text>` line); exit code 1 for a failure, 2 for a usage error. No stack
 * trace is printed unless `MCP_DEBUG=1`.
 * @module
 */
import { CommanderError, type Command } from 'commander'
import { AuthError } from '../../errors.js'
import { printableLines, terminalSafeJson } from '../../internal/text.js'

/** Exit code for a failed operation (bad file, refused write, …). */
export const EXIT_FAILURE = 1
/** Exit code for a usage error (unknown option, missing argument, conflicting flags). */
export const EXIT_USAGE = 2

/** A usage error raised by a tool's own argument checks: exit code 2. */
export class UsageError extends Error {
  readonly hint: string | undefined
  constructor(message: string, hint?: string) {
    super(message)
    this.name = 'UsageError'
    this.hint = hint
  }
}

function debugEnabled(): boolean {
  return process.env.MCP_DEBUG === '1'
}

/** Writes `error: <message>` (and `hint: <hint>`) to stderr and sets process.exitCode. */
export function fail(message: string, hint?: string, exitCode: number = EXIT_FAILURE): void {
  // Messages may quote a peer's or a file's text: nothing in them may act on the terminal.
  process.stderr.write(`error: ${printableLines(message)}\n`)
  if (hint) process.stderr.write(`hint: ${printableLines(hint)}\n`)
  process.exitCode = exitCode
}

/** Writes a warning line to stderr (does not change the exit code). */
export function warn(message: string): void {
  process.stderr.write(`warning: ${printableLines(message)}\n`)
}

/** Pretty-printed JSON on stdout, newline-terminated (C1 controls and the like as \\u escapes). */
export function printJson(value: unknown): void {
  process.stdout.write(terminalSafeJson(JSON.stringify(value, null, 2)) + '\n')
}

/** A line of text on stdout. */
export function printLine(text = ''): void {
  process.stdout.write(text + '\n')
}

/**
 * Makes a commander program report usage errors through {@link runCli} (exit 2, `error: …`)
 * instead of calling process.exit itself. Call on the root program before parsing.
 */
export function configureProgram(program: Command): Command {
  program.exitOverride()
  program.configureOutput({
    // commander prefixes its own messages with "error: "; runCli prints them, so swallow here.
    outputError: () => {},
  })
  program.showHelpAfterError(false)
  return program
}

/** Maps any thrown value to stderr output and an exit code. Exported for tests. */
export function reportError(err: unknown): number {
  if (err instanceof CommanderError) {
    // --help / --version end with a CommanderError whose exitCode is 0.
    if (err.exitCode === 0 || err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return 0
    const message = err.message.replace(/^error:\s*/i, '')
    fail(message, 'run with --help for usage', EXIT_USAGE)
    return EXIT_USAGE
  }
  if (err instanceof UsageError) {
    fail(err.message, err.hint ?? 'run with --help for usage', EXIT_USAGE)
    return EXIT_USAGE
  }
  if (err instanceof AuthError) {
    const hint = (err as AuthError & { hint?: unknown }).hint
    fail(err.message, typeof hint === 'string' ? hint : undefined, EXIT_FAILURE)
  } else if (err instanceof Error) {
    fail(err.message, undefined, EXIT_FAILURE)
  } else {
    fail(String(err), undefined, EXIT_FAILURE)
  }
  if (debugEnabled() && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n')
  return EXIT_FAILURE
}

/**
 * Runs a CLI main function: AuthError → `error: <message>` + exit 1; usage errors (commander
 * or {@link UsageError}) → exit 2; never a stack trace unless MCP_DEBUG=1. Sets
 * process.exitCode rather than calling process.exit so stdout is flushed.
 */
export async function runCli(main: () => Promise<void>): Promise<void> {
  // `tool | head` closes stdout early: stop quietly instead of crashing with EPIPE.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0)
    throw err
  })
  try {
    await main()
  } catch (err) {
    process.exitCode = reportError(err)
  }
}
