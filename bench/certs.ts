/**
 * On-the-fly ed25519 X.509 material for the TLS runs, made with the `openssl` command in a temp
 * dir: a CA, a server certificate (SAN IP:127.0.0.1) and a client certificate (clientAuth).
 * @module
 */
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

export interface CertFiles {
  ca: string
  serverKey: string
  serverCert: string
  clientKey: string
  clientCert: string
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
}

export function makeCerts(dir: string): CertFiles {
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n')
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n')
  openssl(dir, ['genpkey', '-algorithm', 'ed25519', '-out', 'ca.key'])
  openssl(dir, ['req', '-x509', '-new', '-key', 'ca.key', '-subj', '/CN=mcp-pki-bench CA', '-days', '2', '-out', 'ca.crt'])
  for (const who of ['server', 'client']) {
    openssl(dir, ['genpkey', '-algorithm', 'ed25519', '-out', `${who}.key`])
    openssl(dir, ['req', '-new', '-key', `${who}.key`, '-subj', `/CN=mcp-pki-bench ${who}`, '-out', `${who}.csr`])
    openssl(dir, ['x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', `${who}.ext`, '-out', `${who}.crt`])
  }
  return {
    ca: join(dir, 'ca.crt'),
    serverKey: join(dir, 'server.key'),
    serverCert: join(dir, 'server.crt'),
    clientKey: join(dir, 'client.key'),
    clientCert: join(dir, 'client.crt'),
  }
}
