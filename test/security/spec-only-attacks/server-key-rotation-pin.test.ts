/* eslint-disable @typescript-eslint/no-explicit-any -- attack harness: peer messages are untyped JSON */
// Property 16 (§15): a pin moves only to a key proven by both keys in the same handshake. A hostile
// server (written here from PROTOCOL.md) plays the whole handshake to a createAuthFetch victim whose
// config pins a server key. Control: the holder of the pinned key can move the pin (by design).
// Attacks: a thief of the retired key against a client already re-pinned (downgrade), an update
// replayed from another handshake, an update in the reverse direction, swapped signatures, a
// `from` that is not the pin. The pin in the file must stay and the handshake must fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { b64u, lp, sigin, H } from './env.js';
import { hostile, raw, fp, newKey, type UpdatePlan } from './hostile.js';
import { createAuthFetchFromConfig } from '../../../src/mcp/client.js';

type Key = crypto.KeyObject;
void H;

function update(T4: Buffer, from: Key | Buffer, to: Key | Buffer, signFrom: Key | null, signTo: Key | null, ctxFrom = 'mcp-pki/2 server-key-update', ctxTo = 'mcp-pki/2 server-key-prove') {
  const f = Buffer.isBuffer(from) ? from : raw(from), t = Buffer.isBuffer(to) ? to : raw(to);
  const TU = Buffer.concat([T4, lp(f), lp(t)]);
  return { TU, u: {
    from_public_key: b64u(f), to_public_key: b64u(t),
    from_signature: b64u(signFrom ? crypto.sign(null, sigin(ctxFrom, TU), signFrom) : crypto.randomBytes(64)),
    to_signature: b64u(signTo ? crypto.sign(null, sigin(ctxTo, TU), signTo) : crypto.randomBytes(64)),
  } };
}

test('property 16: only the holder of the pinned key (with its successor) moves a pin', async () => {
  const h = await hostile();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'atk-rot-'));
  try {
    fs.mkdirSync(path.join(dir, 'keys'));
    const ck = newKey();
    fs.writeFileSync(path.join(dir, 'keys/client_private.pem'), ck.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    fs.writeFileSync(path.join(dir, 'keys/client_public.pem'), crypto.createPublicKey(ck).export({ format: 'pem', type: 'spki' }));
    fs.writeFileSync(path.join(dir, 'keys/client_allowlist.json'), JSON.stringify({ version: 1, keys: [] }));
    const cfgFile = path.join(dir, 'client.yml');
    const writeCfg = (pin: string) => fs.writeFileSync(cfgFile, `keys:\n  private_key_path: "./keys/client_private.pem"\n  public_key_path: "./keys/client_public.pem"\nacl:\n  allowlist_path: "./keys/client_allowlist.json"\nservers:\n  local:\n    url: "http://127.0.0.1:${h.port}/auth"\n    fingerprint: "${pin}"\n`);
    const pinned = () => /fingerprint: "([0-9a-f]{64})"/.exec(fs.readFileSync(cfgFile, 'utf8'))![1];
    const attempt = async () => {
      const af = await createAuthFetchFromConfig(cfgFile, `http://127.0.0.1:${h.port}/mcp`, { interactive: false, onPinLog: (...a: unknown[]) => { if (process.env.DBG) console.log('PINLOG', ...a); } } as any);
      const r = await af.session().then(() => 'ok', (e: any) => String(e?.code ?? e));
      await new Promise((res) => setTimeout(res, 300)); // the pin is written after the handshake returns
      return r;
    };
    const P = newKey(), N = newKey(), A = newKey();

    // control 1: pinned key presented, no update → ok; pin unchanged
    writeCfg(fp(P)); h.present = P; h.plan = () => undefined;
    assert.equal(await attempt(), 'ok');
    // control 2 (by design): holder of P announces N, proven by both → pin moves to N
    let genuine: { TU: Buffer; u: Record<string, string> } | undefined;
    h.plan = ({ T4 }) => (genuine = update(T4, P, N, P, N)).u;
    assert.equal(await attempt(), 'ok');
    assert.equal(pinned(), fp(N), 'control: a genuine update moves the pin');

    const cases: Array<[string, string, Key, UpdatePlan]> = [
      // thief of the retired key P, victim pinned to N: presents P, cannot sign with N
      ['downgrade: stolen retired key, to_signature forged', fp(N), P, ({ T4 }) => update(T4, P, N, P, null).u],
      ['downgrade: stolen retired key, no update', fp(N), P, () => undefined],
      ['reverse direction: from=N to=P, signed by P only', fp(N), P, ({ T4 }) => update(T4, N, P, null, P).u],
      ['stolen retired key announces its own successor A', fp(N), A, ({ T4 }) => update(T4, P, A, P, A).u],
      // attacker without any server key, victim pinned to P
      ['replayed genuine update from another handshake', fp(P), A, () => genuine!.u],
      ['genuine from_signature replayed into a new update to A', fp(P), A, ({ T4 }) => ({ ...update(T4, P, A, null, A).u, from_signature: genuine!.u.from_signature! })],
      ['update whose from is not the pin', fp(P), A, ({ T4 }) => update(T4, N, A, N, A).u],
      ['swapped contexts', fp(P), A, ({ T4 }) => update(T4, P, A, A, A, 'mcp-pki/2 server-key-prove', 'mcp-pki/2 server-key-update').u],
      ['to = from = attacker', fp(P), A, ({ T4 }) => update(T4, A, A, A, A).u],
      ['small-order successor (identity point)', fp(P), A, ({ T4 }) => update(T4, P, Buffer.concat([Buffer.from([1]), Buffer.alloc(31)]), null, null).u],
    ];
    for (const [name, pin, present, plan] of cases) {
      writeCfg(pin); h.present = present; h.plan = plan;
      const r = await attempt();
      assert.notEqual(r, 'ok', name + ': handshake accepted');
      assert.equal(pinned(), pin, name + ': the pin moved');
    }
    // the pinned key's holder with a forged successor proof cannot move the pin either
    writeCfg(fp(P)); h.present = P; h.plan = ({ T4 }) => update(T4, P, A, P, null).u;
    assert.equal(await attempt(), 'ok', 'pinned key presented: handshake fine');
    assert.equal(pinned(), fp(P), 'no successor proof: pin stays');
  } finally { await h.close(); fs.rmSync(dir, { recursive: true, force: true }); }
});
