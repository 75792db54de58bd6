/* eslint-disable @typescript-eslint/no-explicit-any -- attack harness: peer messages are untyped JSON */
// Property 20 (§7b): a client that trusts servers through a CA entry accepts a server key only with
// a host certificate from that CA, for that key, valid now, naming the URL's host literally, with no
// critical option. A hostile server (hostile.ts) presents each wrong certificate, properly signed
// into T2: the client must refuse (no pin, no TOFU).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { execFileSync } from 'node:child_process';
import { CLI } from './env.js';
import { hostile, newKey } from './hostile.js';
import { createAuthFetchFromConfig } from '../../../src/mcp/client.js';

function sshPub(key: crypto.KeyObject): string {
  const raw = Buffer.from(crypto.createPublicKey(key).export({ format: 'jwk' }).x as string, 'base64url');
  const s = (b: Buffer) => { const l = Buffer.alloc(4); l.writeUInt32BE(b.length); return Buffer.concat([l, b]); };
  return 'ssh-ed25519 ' + Buffer.concat([s(Buffer.from('ssh-ed25519')), s(raw)]).toString('base64') + ' k';
}

test('property 20 (§7b): host certificates are judged strictly by the client', async () => {
  const h = await hostile();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'atk-hc-'));
  try {
    fs.mkdirSync(path.join(dir, 'keys'));
    const ck = newKey();
    fs.writeFileSync(path.join(dir, 'keys/client_private.pem'), ck.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    fs.writeFileSync(path.join(dir, 'keys/client_public.pem'), crypto.createPublicKey(ck).export({ format: 'pem', type: 'spki' }));
    fs.writeFileSync(path.join(dir, 'keys/client_allowlist.json'), JSON.stringify({ version: 1, keys: [] }));
    const cfg = path.join(dir, 'client.yml');
    fs.writeFileSync(cfg, `keys:\n  private_key_path: "./keys/client_private.pem"\n  public_key_path: "./keys/client_public.pem"\nacl:\n  allowlist_path: "./keys/client_allowlist.json"\nservers:\n  local:\n    url: "http://127.0.0.1:${h.port}/auth"\n`);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'ca')]);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'rogue_ca')]);
    execFileSync('node', [CLI('mcp-allowlist.js'), 'add', '--config', 'client.yml', '--cert-authority', '--key-file', 'ca.pub'], { cwd: dir, stdio: 'pipe' });
    let n = 0;
    const cert = (key: crypto.KeyObject, args: string[], ca = 'ca'): string => {
      const f = path.join(dir, `k${++n}.pub`);
      fs.writeFileSync(f, sshPub(key) + '\n');
      execFileSync('ssh-keygen', ['-q', '-s', path.join(dir, ca), '-I', `h${n}`, '-z', String(n), ...args, f], { stdio: 'pipe' });
      return Buffer.from(fs.readFileSync(path.join(dir, `k${n}-cert.pub`), 'utf8').split(' ')[1]!, 'base64').toString('base64url');
    };
    const attempt = async () => {
      const af = await createAuthFetchFromConfig(cfg, `http://127.0.0.1:${h.port}/mcp`, { interactive: false } as any);
      return af.session().then(() => 'ok', (e: any) => String(e?.code ?? e));
    };
    const S = newKey();
    h.present = S;
    // control: host certificate for 127.0.0.1 from the listed CA
    h.certificate = cert(S, ['-h', '-n', '127.0.0.1', '-V', '-5m:+1h']);
    assert.equal(await attempt(), 'ok', 'control');
    h.certificate = undefined;
    assert.notEqual(await attempt(), 'ok', 'no certificate, no pin, no TOFU');
    const cases: Array<[string, string]> = [
      ['user certificate', cert(S, ['-n', '127.0.0.1', '-V', '-5m:+1h'])],
      ['other host', cert(S, ['-h', '-n', 'localhost', '-V', '-5m:+1h'])],
      ['wildcard principal *', cert(S, ['-h', '-n', '*', '-V', '-5m:+1h'])],
      ['wildcard principal 127.0.0.*', cert(S, ['-h', '-n', '127.0.0.*', '-V', '-5m:+1h'])],
      ['wildcard principal 127.0.0.?', cert(S, ['-h', '-n', '127.0.0.?', '-V', '-5m:+1h'])],
      ['principal with trailing dot', cert(S, ['-h', '-n', '127.0.0.1.', '-V', '-5m:+1h'])],
      ['no principal', cert(S, ['-h', '-V', '-5m:+1h'])],
      ['expired', cert(S, ['-h', '-n', '127.0.0.1', '-V', '-2h:-6m'])],
      ['not yet valid', cert(S, ['-h', '-n', '127.0.0.1', '-V', '+6m:+1h'])],
      ['certificate for another key', cert(newKey(), ['-h', '-n', '127.0.0.1', '-V', '-5m:+1h'])],
      ['unlisted CA', cert(S, ['-h', '-n', '127.0.0.1', '-V', '-5m:+1h'], 'rogue_ca')],
    ];
    try { cases.push(['critical option', cert(S, ['-h', '-n', '127.0.0.1', '-V', '-5m:+1h', '-O', 'critical:force-command=x'])]); } catch { /* ssh-keygen refuses */ }
    for (const [name, c] of cases) {
      h.certificate = c;
      assert.notEqual(await attempt(), 'ok', name + ': trusted');
    }
  } finally { await h.close(); fs.rmSync(dir, { recursive: true, force: true }); }
});
