/**
 * ed25519 keys: key pairs, fingerprints, signatures, and key files.
 * @module
 */
export * from './key-pair.js'
export * from './key-file.js'
export * from './point-check.js'
