// Property 20 (§7a): a key that is not listed gets in only with a user certificate from a listed CA,
// for that very key, valid now, with an allowed principal and no critical option; the certificate is
// covered by the client's signature (swapped in transit it fails), and the session ends with it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { makeEnv, handshake, send, CLI, b64u } from './env.js';

function sshPub(key: crypto.KeyObject): string {
  const raw = Buffer.from(crypto.createPublicKey(key).export({ format: 'jwk' }).x as string, 'base64url');
  const s = (b: Buffer) => { const l = Buffer.alloc(4); l.writeUInt32BE(b.length); return Buffer.concat([l, b]); };
  return 'ssh-ed25519 ' + Buffer.concat([s(Buffer.from('ssh-ed25519')), s(raw)]).toString('base64') + ' k';
}

test('property 20: client certificates are judged strictly', async () => {
  const env = await makeEnv({ auth: '  session_ttl: 900\n' });
  try {
    const d = env.dir;
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(d, 'ca')]);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(d, 'rogue_ca')]);
    execFileSync('node', [CLI('mcp-allowlist.js'), 'add', '--config', 'server.yml', '--cert-authority', '--key-file', 'ca.pub', '--principals', 'alice,deploy', '--role-from', 'principal'], { cwd: d, stdio: 'pipe' });
    let n = 0;
    const cert = (key: crypto.KeyObject, args: string[], ca = 'ca'): string => {
      const f = path.join(d, `k${++n}.pub`);
      fs.writeFileSync(f, sshPub(key) + '\n');
      execFileSync('ssh-keygen', ['-q', '-s', path.join(d, ca), '-I', `id${n}`, '-z', String(n), ...args, f], { stdio: 'pipe' });
      return Buffer.from(fs.readFileSync(path.join(d, `k${n}-cert.pub`), 'utf8').split(' ')[1]!, 'base64').toString('base64url');
    };
    await env.start();
    const alice = crypto.generateKeyPairSync('ed25519').privateKey;
    const bob = crypto.generateKeyPairSync('ed25519').privateKey;
    const good = cert(alice, ['-n', 'alice', '-V', '-5m:+1h']);
    // control: a good certificate gets a session that works
    const s = await handshake(env, { key: alice, certificate: good });
    assert.equal((await send(env, s)).status, 200);
    assert.ok(Date.parse(s.expiresAt) <= Date.now() + 3600_000 + 300_000 + 5_000, 'session capped by valid_before + tolerance');
    const refused = async (label: string, o: Parameters<typeof handshake>[1]) => {
      await assert.rejects(handshake(env, o), (e: Error) => { assert.match(e.message, /^M4 /, label + ': ' + e.message); assert.match(e.message, /authentication_failed|invalid_message/, label); return true; }, label);
    };
    await refused('host certificate', { key: alice, certificate: cert(alice, ['-h', '-n', 'alice', '-V', '-5m:+1h']) });
    await refused('expired', { key: alice, certificate: cert(alice, ['-n', 'alice', '-V', '20200101:20200102']) });
    await refused('expired beyond tolerance', { key: alice, certificate: cert(alice, ['-n', 'alice', '-V', '-2h:-6m']) });
    await refused('not yet valid', { key: alice, certificate: cert(alice, ['-n', 'alice', '-V', '+6m:+1h']) });
    await refused('principal not allowed', { key: alice, certificate: cert(alice, ['-n', 'bob', '-V', '-5m:+1h']) });
    await refused('principal differs by case', { key: alice, certificate: cert(alice, ['-n', 'Alice', '-V', '-5m:+1h']) });
    await refused('no principal', { key: alice, certificate: cert(alice, ['-V', '-5m:+1h']) });
    await refused('critical option force-command', { key: alice, certificate: cert(alice, ['-n', 'alice', '-V', '-5m:+1h', '-O', 'force-command=/bin/true']) });
    await refused('critical option source-address', { key: alice, certificate: cert(alice, ['-n', 'alice', '-V', '-5m:+1h', '-O', 'source-address=127.0.0.1']) });
    await refused('unlisted CA', { key: alice, certificate: cert(alice, ['-n', 'alice', '-V', '-5m:+1h'], 'rogue_ca') });
    await refused("alice's certificate with bob's key", { key: bob, certificate: good });
    await refused('certificate added in transit (T3 signed without it)', { key: alice, sendCertificate: good });
    await refused('certificate swapped in transit', { key: alice, certificate: good, sendCertificate: cert(alice, ['-n', 'deploy', '-V', '-5m:+1h']) });
    await refused('certificate truncated', { key: alice, certificate: good.slice(0, -8) });
    await refused('certificate with trailing bytes', { key: alice, certificate: b64u(Buffer.concat([Buffer.from(good, 'base64url'), Buffer.from([0])])) });
    // a second good certificate for the same key still works (it was the swaps that failed)
    const s2 = await handshake(env, { key: alice, certificate: cert(alice, ['-n', 'deploy', '-V', '-5m:+1h']) });
    assert.equal((await send(env, s2)).status, 200);
    // the CA leaves the allowlist: the certified sessions end at their next request
    const caBlob = Buffer.from(fs.readFileSync(path.join(d, 'ca.pub'), 'utf8').split(' ')[1]!, 'base64');
    const caFp = crypto.createHash('sha256').update(caBlob.subarray(caBlob.length - 32)).digest('hex');
    execFileSync('node', [CLI('mcp-allowlist.js'), 'remove', '--config', 'server.yml', '--fingerprint', caFp], { cwd: d, stdio: 'pipe' });
    let last: Awaited<ReturnType<typeof send>> | undefined;
    for (let i = 0; i < 60; i++) {
      last = await send(env, s2);
      if (last.status !== 200) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(last!.status, 401, 'certified session survives its CA removal');
    assert.equal(last!.code, 'session_revoked');
    await refused('CA removed', { key: alice, certificate: cert(alice, ['-n', 'alice', '-V', '-5m:+1h']) });
  } finally { await env.close(); }
});
