/**
 * ed25519 keys: key pairs, fingerprints, signatures, and key files.
 * @module
 */
export * from './key-pair.js'
export * from './key-file.js'
export * from './point-check.js'
export * from './openssh-cert.js'
export * from './ssh-agent.js'
export * from './openssh-krl.js'
