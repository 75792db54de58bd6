/* eslint-disable @typescript-eslint/no-explicit-any -- attack harness: peer messages are untyped JSON */
// Attack environment built only from docs/PROTOCOL.md and docs/operations.md: real CLIs as child
// processes, a counting upstream, and an independent mcp-pki/2 client written with node:crypto.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';

const ROOT = path.resolve(import.meta.dirname, '../../..');
export const CLI = (n: string) => path.join(ROOT, 'dist/bin', n);

export const b64u = (b: Buffer) => b.toString('base64url');
export const unb64u = (s: string) => Buffer.from(s, 'base64url');
export const H = (b: Buffer | string) => crypto.createHash('sha256').update(b).digest();
export function lp(x: Buffer | string): Buffer {
  const b = typeof x === 'string' ? Buffer.from(x, 'utf8') : x;
  const l = Buffer.alloc(4); l.writeUInt32BE(b.length); return Buffer.concat([l, b]);
}
export const sigin = (ctx: string, T: Buffer) => Buffer.concat([lp(ctx), H(T)]);
export const hmac = (k: Buffer, d: Buffer) => crypto.createHmac('sha256', k).update(d).digest();
export const ts = (ms = Date.now()) => new Date(ms).toISOString();

export async function freePort(): Promise<number> {
  return new Promise((res) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => res(p)); }); });
}

export function rawPub(pem: string): Buffer {
  return unb64u(crypto.createPublicKey(pem).export({ format: 'jwk' }).x as string);
}

export interface Env {
  dir: string; port: number; upPort: number; calls: { n: number; bodies: string[] };
  clientKey: crypto.KeyObject; clientPub: Buffer; serverPub: Buffer;
  start(): Promise<void>; stop(): Promise<void>; close(): Promise<void>; url: string;
}

const SETUP_COMMANDS: [string, string[]][] = [
  ['mcp-config-validate.js', ['--init', 'server', 'server.yml']],
  ['mcp-config-validate.js', ['--init', 'client', 'client.yml']],
  ['mcp-keygen.js', ['--output-dir', './keys', '--key-name', 'server']],
  ['mcp-keygen.js', ['--output-dir', './keys', '--key-name', 'client']],
  ['mcp-allowlist.js', ['add', '--config', 'server.yml', '--key-file', 'keys/client_public.pem']],
  ['mcp-allowlist.js', ['add', '--config', 'client.yml', '--key-file', 'keys/server_public.pem']],
];

/**
 * The folder the six set-up commands above leave (configs, keys, both allowlists), made once and
 * copied by every attack environment: about 1.2 s of CPU per environment, 17 of them. It lives in
 * the tree the tests run from (.test-tree, rebuilt by every `make test`), or under the system temp
 * folder when they run from the checkout, named by a digest of the commands, their arguments and
 * the Node version. It is made aside and renamed into place, so test processes racing to make it
 * end with one complete copy.
 */
function setupTemplate(): string {
  const digest = crypto.createHash('sha256').update(JSON.stringify([SETUP_COMMANDS, process.version, ROOT]));
  for (const [cli] of SETUP_COMMANDS) digest.update(fs.readFileSync(CLI(cli)));
  const home = path.basename(ROOT) === '.test-tree' ? path.join(ROOT, '.attack-setup') : path.join(os.tmpdir(), 'mcp-pki-attack-setup');
  const template = path.join(home, digest.digest('hex').slice(0, 16));
  if (fs.existsSync(path.join(template, '.complete'))) return template;
  fs.mkdirSync(home, { recursive: true });
  const work = fs.mkdtempSync(`${template}.making-`);
  try {
    for (const [cli, args] of SETUP_COMMANDS) execFileSync('node', [CLI(cli), ...args], { cwd: work, stdio: 'pipe' });
    fs.writeFileSync(path.join(work, '.complete'), '');
    fs.renameSync(work, template);
  } catch (err) {
    fs.rmSync(work, { recursive: true, force: true });
    // Another test process put its copy in place first; anything else is a real failure.
    if (!fs.existsSync(path.join(template, '.complete'))) throw err;
  }
  return template;
}

export async function makeEnv(opts: { auth?: string; gateway?: boolean } = {}): Promise<Env> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'atk-'));
  fs.cpSync(setupTemplate(), dir, { recursive: true });
  fs.rmSync(path.join(dir, '.complete'));
  const calls = { n: 0, bodies: [] as string[] };
  const up = http.createServer((req, res) => {
    let b = ''; req.on('data', (c) => (b += c)); req.on('end', () => {
      calls.n++; calls.bodies.push(b);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { n: calls.n } }));
    });
  });
  const upPort = await new Promise<number>((r) => up.listen(0, '127.0.0.1', () => r((up.address() as net.AddressInfo).port)));
  // The upstream listens first: a port freed by freePort() could otherwise be handed straight back
  // to it, and the server under attack would fail to bind while /health answered from the upstream.
  let port = await freePort();
  while (port === upPort) port = await freePort();
  let cfg = fs.readFileSync(path.join(dir, 'server.yml'), 'utf8').replace('port: 8443', `port: ${port}`);
  if (opts.auth) cfg = cfg.replace('auth:\n', `auth:\n${opts.auth}`);
  cfg = cfg.replace(/audit:\n {2}enabled: true/, 'audit:\n  enabled: false');
  fs.writeFileSync(path.join(dir, 'server.yml'), cfg);
  fs.writeFileSync(path.join(dir, 'client.yml'), fs.readFileSync(path.join(dir, 'client.yml'), 'utf8').replace('8443', String(port)));
  let child: ChildProcess | undefined;
  const env: Env = {
    dir, port, upPort, calls, url: `http://127.0.0.1:${port}`,
    clientKey: crypto.createPrivateKey(fs.readFileSync(path.join(dir, 'keys/client_private.pem'))),
    clientPub: rawPub(fs.readFileSync(path.join(dir, 'keys/client_public.pem'), 'utf8')),
    serverPub: rawPub(fs.readFileSync(path.join(dir, 'keys/server_public.pem'), 'utf8')),
    async start() {
      const args = opts.gateway === false ? [CLI('mcp-pki-server.js'), '--config', 'server.yml']
        : [CLI('mcp-pki-gateway.js'), '--config', 'server.yml', '--upstream', `http://127.0.0.1:${upPort}/mcp`];
      child = spawn('node', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      let errText = '';
      child.stderr!.on('data', (d) => (errText += d));
      for (let i = 0; i < 200; i++) {
        // Ready when /health answers and the child still runs (another process may hold the port).
        try { const r = await fetch(`http://127.0.0.1:${port}/health`); await r.text(); if (r.ok && child.exitCode === null) return; } catch { /* not yet */ }
        if (child.exitCode !== null) throw new Error('server exited: ' + errText);
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error('server did not start: ' + errText);
    },
    async stop() {
      if (!child || child.exitCode !== null) return;
      const c = child; const done = new Promise((r) => c.once('exit', r)); c.kill('SIGTERM'); await done;
    },
    async close() { await env.stop(); await new Promise((r) => up.close(r)); up.closeAllConnections?.(); fs.rmSync(dir, { recursive: true, force: true }); },
  };
  return env;
}

export interface Session {
  token: string; sk: Buffer; epoch: Buffer; offset: number; seq: number; expiresAt: string; m4: any;
}

/** An independent mcp-pki/2 client (PROTOCOL.md §3–§5). */
export async function handshake(env: Env, opts: { audience?: string; certificate?: string; key?: crypto.KeyObject; sendCertificate?: string } = {}): Promise<Session> {
  const clientKey = opts.key ?? env.clientKey;
  const clientPub = opts.key ? unb64u(crypto.createPublicKey(opts.key).export({ format: 'jwk' }).x as string) : env.clientPub;
  const url = env.url + '/auth';
  const eph = crypto.generateKeyPairSync('x25519');
  const ephPub = unb64u(eph.publicKey.export({ format: 'jwk' }).x as string);
  const m1 = { type: 'auth_request', version: 'mcp-pki/2', client_public_key: b64u(clientPub),
    client_nonce: b64u(crypto.randomBytes(32)), client_ephemeral: b64u(ephPub), timestamp: ts(), audience: opts.audience ?? url };
  const post = async (b: unknown) => { const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) }); return { status: r.status, body: await r.json() as any }; };
  const r2 = await post(m1); if (r2.status !== 200) throw new Error('M2 ' + JSON.stringify(r2.body));
  const m2 = r2.body;
  const T1 = Buffer.concat([lp('mcp-pki/2'), lp(clientPub), lp(unb64u(m1.client_nonce)), lp(ephPub), lp(m1.timestamp), lp(m1.audience)]);
  const T2pre = Buffer.concat([T1, lp(unb64u(m2.server_public_key)), lp(unb64u(m2.server_nonce)), lp(unb64u(m2.server_ephemeral)), lp(m2.timestamp), lp(m2.expires_at)]);
  let T2 = Buffer.concat([T2pre, lp(unb64u(m2.challenge_token))]);
  if (m2.certificate) T2 = Buffer.concat([T2, lp('mcp-pki/2 server-certificate'), lp(unb64u(m2.certificate))]);
  const sPub = crypto.createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: m2.server_public_key }, format: 'jwk' });
  if (!crypto.verify(null, sigin('mcp-pki/2 server-challenge', T2), sPub, unb64u(m2.signature))) throw new Error('bad M2 sig');
  const shared = crypto.diffieHellman({ privateKey: eph.privateKey, publicKey: crypto.createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: m2.server_ephemeral }, format: 'jwk' }) });
  const keys = Buffer.from(crypto.hkdfSync('sha256', shared, H(T2pre), 'mcp-pki/2 session-keys', 64));
  const sk = keys.subarray(0, 32), fk = keys.subarray(32);
  const ts3 = ts();
  let T3 = Buffer.concat([T2, lp(unb64u(m2.signature)), lp(ts3)]);
  if (opts.certificate) T3 = Buffer.concat([T3, lp('mcp-pki/2 client-certificate'), lp(unb64u(opts.certificate))]);
  const sig3 = crypto.sign(null, sigin('mcp-pki/2 client-response', T3), clientKey);
  const m3: any = { type: 'auth_response', version: 'mcp-pki/2', request: m1, challenge: m2, timestamp: ts3, signature: b64u(sig3) };
  if (opts.sendCertificate !== undefined) m3.certificate = opts.sendCertificate; else if (opts.certificate) m3.certificate = opts.certificate;
  const r4 = await post(m3); if (r4.status !== 200) throw new Error('M4 ' + JSON.stringify(r4.body));
  const m4 = r4.body;
  const T4 = Buffer.concat([T3, lp(sig3), lp(H(Buffer.from(m4.session_token, 'ascii'))), lp(m4.expires_at), lp(m4.client_fingerprint), lp(m4.server_fingerprint), lp(m4.timestamp), lp(unb64u(m4.replay_epoch))]);
  const fin = hmac(fk, sigin('mcp-pki/2 server-finished', T4));
  if (!crypto.timingSafeEqual(fin, unb64u(m4.finished))) throw new Error('bad finished');
  return { token: m4.session_token, sk, epoch: unb64u(m4.replay_epoch), offset: Date.parse(m4.timestamp) - Date.now(), seq: 0, expiresAt: m4.expires_at, m4 };
}

export function proofMac(s: Session, p: { method: string; target: string; mcpSessionId?: string; body: string; t: string; seq: string; epoch?: Buffer }): Buffer {
  return hmac(s.sk, Buffer.concat([lp('mcp-pki/2 request-proof'), lp(H(Buffer.from(s.token, 'ascii'))), lp(p.epoch ?? s.epoch),
    lp(p.method.toUpperCase()), lp(p.target), lp(p.mcpSessionId ?? ''), lp(H(Buffer.from(p.body))), lp(p.t), lp(p.seq)]));
}

export interface ReqOpts { body?: string; target?: string; t?: string; seq?: string; epoch?: Buffer; header?: string; mcpSessionId?: string; extraHeaders?: Record<string, string>; token?: string }
/** Sends one authenticated request; returns the status, headers, body and the proof MAC used. */
export interface Sent { status: number; headers: Headers; text: string; code: string | undefined; mac: Buffer; header: string }
export async function send(env: Env, s: Session, o: ReqOpts = {}): Promise<Sent> {
  const body = o.body ?? JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} });
  const target = o.target ?? '/mcp';
  const t = o.t ?? String(Date.now() + s.offset);
  const seq = o.seq ?? String(++s.seq);
  const ep = o.epoch ?? s.epoch;
  const m = proofMac(s, { method: 'POST', target, mcpSessionId: o.mcpSessionId, body, t, seq, epoch: ep });
  const header = o.header ?? `t=${t}, s=${seq}, e=${b64u(ep)}, m=${b64u(m)}`;
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json, text/event-stream',
    authorization: `Bearer ${o.token ?? s.token}`, 'mcp-pki-proof': header, ...(o.extraHeaders ?? {}) };
  if (o.mcpSessionId) headers['mcp-session-id'] = o.mcpSessionId;
  const r = await fetch(env.url + target, { method: 'POST', headers, body });
  const text = await r.text();
  let err: string | undefined; try { const j = JSON.parse(text); err = typeof j?.error === "string" ? j.error : j?.error?.code; } catch { /* not json */ }
  return { status: r.status, headers: r.headers, text, code: err, mac: m, header };
}

export function refusalMac(s: Session, code: string, proofM: Buffer) {
  return hmac(s.sk, Buffer.concat([lp('mcp-pki/2 refusal'), lp(code), lp(proofM)]));
}
export function staleMac(s: Session, proofM: Buffer, epoch: Buffer) {
  return hmac(s.sk, Buffer.concat([lp('mcp-pki/2 stale-answer'), lp(proofM), lp(epoch)]));
}
