/* eslint-disable @typescript-eslint/no-explicit-any -- attack harness: peer messages are untyped JSON */
// A hostile mcp-pki/2 server written from docs/PROTOCOL.md (§3–§5, §15) with node:crypto only.
import crypto from 'node:crypto';
import http from 'node:http';
import type net from 'node:net';
import { b64u, unb64u, lp, sigin, H, hmac, ts } from './env.js';

type Key = crypto.KeyObject;
export const raw = (k: Key) => unb64u(crypto.createPublicKey(k).export({ format: 'jwk' }).x as string);
export const fp = (k: Key) => H(raw(k)).toString('hex');
export const newKey = () => crypto.generateKeyPairSync('ed25519').privateKey;

export type UpdatePlan = (ctx: { T4: Buffer }) => Record<string, string> | undefined;
export interface Hostile { port: number; present: Key; certificate?: string; plan: UpdatePlan; captured: Array<{ TU: Buffer; update: Record<string, string> }>; close(): Promise<void> }

export async function hostile(): Promise<Hostile> {
  const st = new Map<string, { m2: any; T2: Buffer; fk: Buffer; }>();
  const h: Hostile = { port: 0, present: newKey(), plan: () => undefined, captured: [], close: async () => { srv.close(); srv.closeAllConnections(); } };
  const srv = http.createServer((req, res) => {
    let b = ''; req.on('data', (d) => (b += d)); req.on('end', () => {
      const msg = JSON.parse(b);
      const out = (o: unknown) => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify(o)); };
      if (msg.type === 'auth_request') {
        const eph = crypto.generateKeyPairSync('x25519');
        const ephPub = unb64u(eph.publicKey.export({ format: 'jwk' }).x as string);
        const now = Date.now();
        const m2: any = { type: 'auth_challenge', version: 'mcp-pki/2', server_public_key: b64u(raw(h.present)), server_nonce: b64u(crypto.randomBytes(32)),
          server_ephemeral: b64u(ephPub), timestamp: ts(now), expires_at: ts(now + 60_000), challenge_token: b64u(crypto.randomBytes(150)) };
        const T1 = Buffer.concat([lp('mcp-pki/2'), lp(unb64u(msg.client_public_key)), lp(unb64u(msg.client_nonce)), lp(unb64u(msg.client_ephemeral)), lp(msg.timestamp), lp(msg.audience)]);
        const T2pre = Buffer.concat([T1, lp(raw(h.present)), lp(unb64u(m2.server_nonce)), lp(ephPub), lp(m2.timestamp), lp(m2.expires_at)]);
        let T2 = Buffer.concat([T2pre, lp(unb64u(m2.challenge_token))]);
        if (h.certificate) { m2.certificate = h.certificate; T2 = Buffer.concat([T2, lp('mcp-pki/2 server-certificate'), lp(unb64u(h.certificate))]); }
        m2.signature = b64u(crypto.sign(null, sigin('mcp-pki/2 server-challenge', T2), h.present));
        const shared = crypto.diffieHellman({ privateKey: eph.privateKey, publicKey: crypto.createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: msg.client_ephemeral }, format: 'jwk' }) });
        const keys = Buffer.from(crypto.hkdfSync('sha256', shared, H(T2pre), 'mcp-pki/2 session-keys', 64));
        st.set(m2.server_nonce, { m2, T2, fk: keys.subarray(32) });
        return out(m2);
      }
      const s = st.get(msg.challenge.server_nonce)!;
      let T3 = Buffer.concat([s.T2, lp(unb64u(s.m2.signature)), lp(msg.timestamp)]);
      if (msg.certificate) T3 = Buffer.concat([T3, lp('mcp-pki/2 client-certificate'), lp(unb64u(msg.certificate))]);
      const token = b64u(crypto.randomBytes(140));
      const now = Date.now();
      const m4: any = { type: 'auth_complete', version: 'mcp-pki/2', success: true, session_token: token, expires_at: ts(now + 900_000),
        client_fingerprint: H(unb64u(msg.request.client_public_key)).toString('hex'), server_fingerprint: fp(h.present), timestamp: ts(now), replay_epoch: b64u(crypto.randomBytes(8)) };
      const T4 = Buffer.concat([T3, lp(unb64u(msg.signature)), lp(H(Buffer.from(token, 'ascii'))), lp(m4.expires_at), lp(m4.client_fingerprint), lp(m4.server_fingerprint), lp(m4.timestamp), lp(unb64u(m4.replay_epoch))]);
      m4.finished = b64u(hmac(s.fk, sigin('mcp-pki/2 server-finished', T4)));
      const u = h.plan({ T4 });
      if (u) m4.server_key_update = u;
      out(m4);
    });
  });
  h.port = await new Promise<number>((r) => srv.listen(0, '127.0.0.1', () => r((srv.address() as net.AddressInfo).port)));
  return h;
}

