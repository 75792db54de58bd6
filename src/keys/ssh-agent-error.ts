/**
 * {@link SshAgentError}: what went wrong talking to an ssh-agent, with a stable `code` and a hint
 * saying what to do. Never holds key material.
 * @module
 */

export type SshAgentErrorCode =
  | 'agent_not_configured'
  | 'agent_unreachable'
  | 'agent_timeout'
  | 'agent_protocol_error'
  | 'agent_key_not_found'
  | 'agent_refused'

/** An ssh-agent problem: `code` is stable, `message` names it, `hint` says what to do. Never holds key material. */
export class SshAgentError extends Error {
  readonly code: SshAgentErrorCode
  readonly hint: string | undefined
  constructor(code: SshAgentErrorCode, message: string, hint?: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause })
    this.name = 'SshAgentError'
    this.code = code
    this.hint = hint
  }
}

export function protocolError(message: string): SshAgentError {
  return new SshAgentError('agent_protocol_error', `unexpected reply from the ssh-agent: ${message}`)
}

export function timeoutError(socketPath: string, timeoutMs: number): SshAgentError {
  return new SshAgentError('agent_timeout', `the ssh-agent at ${socketPath} did not answer within ${timeoutMs} ms`, 'check that the agent is running (`ssh-add -l`) and answer any confirmation prompt')
}

export function closedError(socketPath: string): SshAgentError {
  return new SshAgentError('agent_unreachable', `the ssh-agent at ${socketPath} closed the connection without answering`, 'restart the agent, or check that SSH_AUTH_SOCK points at a running agent')
}

export function unreachableError(socketPath: string, err: NodeJS.ErrnoException): SshAgentError {
  const why = err.code === 'ENOENT' ? 'no such socket' : err.code === 'ECONNREFUSED' ? 'connection refused (no agent listening)' : err.code === 'EACCES' ? 'permission denied' : (err.code ?? err.message)
  return new SshAgentError('agent_unreachable', `cannot reach the ssh-agent at ${socketPath}: ${why}`, 'start one with `eval "$(ssh-agent)"`, or fix SSH_AUTH_SOCK', err)
}
