/**
 * `mcp-keygen rotate <step> --config <server config>`: takes a server (running or not) through a
 * server-key rotation by changing its key files (src/server/server-keys.ts); a running server
 * notices within a second and logs `server_key.reload`.
 *
 *   start   write a new key as keys.next_private_key_path: the server announces it (phase announce)
 *   switch  the new key becomes the server key, the old one the previous key (phase switched)
 *   end     forget the previous key (clients that never re-pinned are refused from then on)
 *   status  print the phase and the fingerprints
 *
 * With `keys.agent` the files are public key files whose keys the ssh-agent must hold: `start`
 * then says how to add a key by hand (the new private key belongs in the agent, not in a file
 * this tool writes); `switch`, `end` and `status` work as without the agent, and check the agent
 * holds the keys.
 * @module
 */
import { link, rename, unlink, writeFile, copyFile, chmod } from 'node:fs/promises'
import { dirname, join, basename } from 'node:path'
import { randomBytes, type KeyObject } from 'node:crypto'
import { Command } from 'commander'
import { loadConfig } from '../config/load-config.js'
import { encodePublicKeyPem, writePrivateKeyFile } from '../keys/key-file.js'
import { generateKeyPair } from '../keys/key-pair.js'
import { agentServerKeyOfFile } from '../server/agent-server-key.js'
import { describeServerKeys, loadServerKeys, serverKeyFilesOf, type ServerKeyFiles } from '../server/server-keys.js'
import { configureProgram, printLine, UsageError } from './shared/output.js'

const STEPS = ['start', 'switch', 'end', 'status'] as const
type Step = (typeof STEPS)[number]

export async function rotateMain(argv: readonly string[]): Promise<void> {
  const program = configureProgram(
    new Command('mcp-keygen rotate')
      .description('Rotate a server key without touching clients (docs/operations.md, "Rotating the server key").')
      .argument('<step>', `one of ${STEPS.join(', ')}`)
      .requiredOption('--config <file>', "the server's config file (keys.private_key_path and its .next/.previous siblings)"),
  )
  program.parse([...argv], { from: 'user' })
  const step = program.args[0] as Step
  if (!(STEPS as readonly string[]).includes(step)) throw new UsageError(`unknown step "${step}": use one of ${STEPS.join(', ')}`)
  const config = await loadConfig(program.opts<{ config: string }>().config)
  const files = serverKeyFilesOf(config)
  const agent = config.keys.agent
  const keys = await loadServerKeys(files, undefined, agent ? agentServerKeyOfFile : undefined)
  const phase = describeServerKeys(keys)
  if (step === 'status') return printStatus(phase)
  if (step === 'start') {
    if (phase.phase !== 'none') throw new UsageError(`a rotation is already under way (phase ${phase.phase}); finish it with: mcp-keygen rotate ${phase.phase === 'announce' ? 'switch' : 'end'} --config <file>`)
    if (agent) {
      throw new UsageError(
        `keys.agent is on: the new key belongs in the ssh-agent, so this tool does not write it. Make it (mcp-keygen --key-format openssh --output-dir <dir> --key-name <name>), ` +
          `load it (ssh-add <dir>/<name>), then announce it by copying its public key to ${files.next} (cp <dir>/<name>.pub ${files.next}); mcp-keygen rotate switch continues from there`,
      )
    }
    const next = generateKeyPair()
    await writePrivateKeyFile(files.next, next.privateKey)
    printLine(`announcing ${next.fingerprint} as the successor of ${phase.current} (written to ${files.next})`)
    printLine('every client that connects from now on re-pins it; when all have (wait at least auth.session_ttl), run: mcp-keygen rotate switch')
    return
  }
  if (step === 'switch') {
    if (phase.phase !== 'announce') throw new UsageError(`nothing to switch to (phase ${phase.phase}); start with: mcp-keygen rotate start --config <file>`)
    await switchKeys(files, agent ? undefined : config.keys.public_key_path, keys.rotation!.to.publicKey)
    printLine(`the server key is now ${phase.to}; ${phase.from} is kept as the previous key (${files.previous})`)
    printLine('clients still pinned to the previous key get in and re-pin; when none is left, run: mcp-keygen rotate end')
    return
  }
  if (phase.phase !== 'switched') throw new UsageError(`no previous key to forget (phase ${phase.phase})`)
  await unlink(files.previous)
  printLine(`forgot the previous key ${phase.from}; only ${phase.current} is accepted now`)
}

function printStatus(phase: Record<string, string>): void {
  for (const [k, v] of Object.entries(phase)) printLine(`${`${k}:`.padEnd(9)}${v}`)
}

/**
 * current → previous (a second name for the same file, so the current key never disappears), then
 * next → current (one atomic rename), then the public key file. A server that looks between the
 * two steps sees next and previous both present, refuses that state and keeps its keys.
 */
async function switchKeys(files: ServerKeyFiles, publicKeyPath: string | undefined, newPublic: KeyObject): Promise<void> {
  try {
    await link(files.current, files.previous)
  } catch {
    await copyFile(files.current, files.previous)
    await chmod(files.previous, 0o600)
  }
  await rename(files.next, files.current)
  if (publicKeyPath === undefined) return // keys.agent: the current file is the public key
  const tmp = join(dirname(publicKeyPath), `.${basename(publicKeyPath)}.${randomBytes(6).toString('hex')}.tmp`)
  await writeFile(tmp, encodePublicKeyPem(newPublic), { mode: 0o644 })
  await rename(tmp, publicKeyPath)
}
