/**
 * Test helpers around the real OpenSSH tools (ssh-keygen, ssh-agent, ssh-add).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'

const execFileAsync = promisify(execFile)

/** Runs ssh-keygen in `dir` with TZ=UTC (so -V dates are UTC). Returns stdout. */
export function sshKeygen(dir: string, args: string[]): string {
  return execFileSync('ssh-keygen', args, { cwd: dir, env: { ...process.env, TZ: 'UTC' }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

/** Generates an ed25519 key pair with ssh-keygen: `dir/name` and `dir/name.pub`. */
export function sshKeygenKey(dir: string, name: string): string {
  sshKeygen(dir, ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', name])
  return join(dir, name)
}

/**
 * Certifies `dir/<key>.pub` with the CA private key `dir/<ca>`; returns the certificate blob
 * (what the base64 of `<key>-cert.pub` encodes).
 */
export function sshCertify(dir: string, ca: string, key: string, args: string[]): Buffer {
  sshKeygen(dir, ['-q', '-s', ca, ...args, `${key}.pub`])
  return certBlobOf(join(dir, `${key}-cert.pub`))
}

export function certBlobOf(path: string): Buffer {
  const line = readFileSync(path, 'utf8').trim()
  return Buffer.from(line.split(/\s+/)[1]!, 'base64')
}

/** The raw 32-byte ed25519 key of an OpenSSH public key file. */
export function rawKeyOfPub(path: string): Buffer {
  const blob = Buffer.from(readFileSync(path, 'utf8').trim().split(/\s+/)[1]!, 'base64')
  return blob.subarray(blob.length - 32)
}

export interface RunningAgent {
  socket: string
  process: ChildProcess
  env: NodeJS.ProcessEnv
  stop(): Promise<void>
}

/** Starts `ssh-agent -D -a <dir>/agent.sock` and waits for its socket. */
export async function startSshAgent(dir: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<RunningAgent> {
  const socket = join(dir, 'agent.sock')
  const env = { ...process.env, ...extraEnv }
  const child = spawn('ssh-agent', ['-D', '-a', socket], { env, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()))
  const deadline = Date.now() + 15_000
  for (;;) {
    try {
      await execFileAsync('ssh-add', ['-l'], { env: { ...env, SSH_AUTH_SOCK: socket } })
      break
    } catch (err) {
      // exit code 1 = "The agent has no identities": it is up.
      if ((err as { code?: number }).code === 1) break
      if (Date.now() > deadline) throw new Error(`ssh-agent did not start: ${stderr}`, { cause: err })
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  return {
    socket,
    process: child,
    env: { ...env, SSH_AUTH_SOCK: socket },
    stop: async () => {
      if (child.exitCode !== null) return
      const exited = new Promise((r) => child.once('exit', r))
      child.kill('SIGTERM')
      await exited
    },
  }
}

/** Runs ssh-add against an agent; resolves with { code, stdout, stderr }. */
export async function sshAdd(agent: RunningAgent, args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync('ssh-add', args, { env: { ...agent.env, ...extraEnv } })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string }
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }
  }
}
