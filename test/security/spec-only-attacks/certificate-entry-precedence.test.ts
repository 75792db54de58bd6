// Property 20 (§7a): a listed key is judged on its entry alone (an expired entry stays refused even
// with a good certificate); a certified role over 64 bytes is refused; a role taken from an
// extension is refused when the extension is missing; a CA entry without principals still needs one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { makeEnv, handshake, send, CLI } from './env.js';

function sshPub(key: crypto.KeyObject): string {
  const raw = Buffer.from(crypto.createPublicKey(key).export({ format: 'jwk' }).x as string, 'base64url');
  const s = (b: Buffer) => { const l = Buffer.alloc(4); l.writeUInt32BE(b.length); return Buffer.concat([l, b]); };
  return 'ssh-ed25519 ' + Buffer.concat([s(Buffer.from('ssh-ed25519')), s(raw)]).toString('base64') + ' k';
}

test('property 20: entry precedence, role limits', async () => {
  const env = await makeEnv();
  try {
    const d = env.dir;
    const run = (args: string[]) => execFileSync('node', [CLI('mcp-allowlist.js'), ...args], { cwd: d, stdio: 'pipe' });
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(d, 'ca')]);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(d, 'ca2')]);
    run(['add', '--config', 'server.yml', '--cert-authority', '--key-file', 'ca.pub', '--role-from', 'principal']);
    run(['add', '--config', 'server.yml', '--cert-authority', '--key-file', 'ca2.pub', '--role-from', 'extension:role@example.com']);
    // the listed client key's entry expires in the past
    const expired = crypto.generateKeyPairSync('ed25519');
    fs.writeFileSync(path.join(d, 'expired.pem'), expired.publicKey.export({ format: 'pem', type: 'spki' }));
    run(['add', '--config', 'server.yml', '--key-file', 'expired.pem', '--metadata', JSON.stringify({ expires: '2020-01-01T00:00:00Z' })]);
    let n = 0;
    const cert = (key: crypto.KeyObject, args: string[], ca = 'ca'): string => {
      const f = path.join(d, `k${++n}.pub`);
      fs.writeFileSync(f, sshPub(key) + '\n');
      execFileSync('ssh-keygen', ['-q', '-s', path.join(d, ca), '-I', `id${n}`, ...args, f], { stdio: 'pipe' });
      return Buffer.from(fs.readFileSync(path.join(d, `k${n}-cert.pub`), 'utf8').split(' ')[1]!, 'base64').toString('base64url');
    };
    await env.start();
    const refused = async (label: string, o: Parameters<typeof handshake>[1]) => {
      await assert.rejects(handshake(env, o), (e: Error) => { assert.match(e.message, /^M4 .*authentication_failed/, label + ': ' + e.message); return true; }, label);
    };
    const k = crypto.generateKeyPairSync('ed25519').privateKey;
    // control
    const s = await handshake(env, { key: k, certificate: cert(k, ['-n', 'a'.repeat(64), '-V', '-5m:+1h']) });
    assert.equal((await send(env, s)).status, 200);
    await refused('role of 65 bytes', { key: k, certificate: cert(k, ['-n', 'a'.repeat(65), '-V', '-5m:+1h']) });
    await refused('role from a missing extension', { key: k, certificate: cert(k, ['-n', 'x', '-V', '-5m:+1h'], 'ca2') });
    const s2 = await handshake(env, { key: k, certificate: cert(k, ['-n', 'x', '-V', '-5m:+1h', '-O', 'extension:role@example.com=ops'], 'ca2') });
    assert.equal((await send(env, s2)).status, 200);
    const ec = cert(expired.privateKey, ['-n', 'alice', '-V', '-5m:+1h']);
    await refused('listed key with an expired entry and a good certificate', { key: expired.privateKey, certificate: ec });
    // control: the same certificate is good once the expired entry is gone
    const efp = crypto.createHash('sha256').update(Buffer.from(expired.publicKey.export({ format: 'jwk' }).x as string, 'base64url')).digest('hex');
    run(['remove', '--config', 'server.yml', '--fingerprint', efp]);
    let ok = false;
    for (let i = 0; i < 40 && !ok; i++) { ok = await handshake(env, { key: expired.privateKey, certificate: ec }).then(() => true, () => false); if (!ok) await new Promise((r) => setTimeout(r, 250)); }
    assert.ok(ok, 'the certificate alone is good');
  } finally { await env.close(); }
});
