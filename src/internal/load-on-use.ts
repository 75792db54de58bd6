/**
 * CommonJS dependencies loaded where they are first used rather than when the package is imported:
 * prom-client (with @opentelemetry/api) only when metrics are made, ws only when a WebSocket is
 * opened or served, yaml only when a YAML file is read or written. Importing the package cost
 * 0.41 s of CPU on the 2-core CI host, of which about 0.10 s was prom-client, 0.09 s ws and 0.12 s
 * yaml; a program that uses none of them no longer pays for them. All three ship CommonJS, so
 * `require` loads them synchronously at that point (as load-ioredis.ts does for ioredis).
 * @module
 */
import { createRequire } from 'node:module'
import type * as PromClient from 'prom-client'
import type * as Yaml from 'yaml'
import type { WebSocket, WebSocketServer } from 'ws'

const require = createRequire(import.meta.url)

let promClient: typeof PromClient | undefined
let ws: WsModule | undefined
let yaml: typeof Yaml | undefined

/** ws's CommonJS export: the WebSocket class, with the server class beside it. */
export interface WsModule {
  WebSocket: typeof WebSocket
  WebSocketServer: typeof WebSocketServer
}

/** prom-client, required on first use. */
export function loadPromClient(): typeof PromClient {
  promClient ??= require('prom-client') as typeof PromClient
  return promClient
}

/** ws, required on first use. */
export function loadWs(): WsModule {
  ws ??= require('ws') as WsModule
  return ws
}

/** yaml, required on first use. */
export function loadYaml(): typeof Yaml {
  yaml ??= require('yaml') as typeof Yaml
  return yaml
}
