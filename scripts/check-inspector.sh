#!/usr/bin/env bash
# Repeatable check: the MCP Inspector's command-line mode lists and calls tools through
# mcp-pki-proxy, against an unmodified SDK server behind mcp-pki-gateway. Everything runs on
# 127.0.0.1 in a temporary directory. Needs network access once, for `npx` to fetch the Inspector.
#
#   npm run build && scripts/check-inspector.sh
#
# Exit code 0 when both Inspector calls succeed and the tool saw the proxy's client key.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLI="$ROOT/dist/bin"
INSPECTOR="${INSPECTOR:-@modelcontextprotocol/inspector@2.12.0}"
[ -f "$CLI/mcp-pki-proxy.js" ] || { echo "error: build first (npm run build)" >&2; exit 1; }

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"

# 1. Keys and allowlists (the README's step 2).
node "$CLI/mcp-keygen.js" --output-dir keys --key-name server >/dev/null
node "$CLI/mcp-keygen.js" --output-dir keys --key-name client >/dev/null
cat > server_config.yml <<'YAML'
keys:
  private_key_path: "./keys/server_private.pem"
  public_key_path: "./keys/server_public.pem"
acl:
  allowlist_path: "./keys/server_allowlist.json"
audit:
  enabled: true
  log_file: "./server_audit.jsonl"
transport:
  type: "http"
  host: "127.0.0.1"
  port: 0
YAML
cat > client_config.yml <<'YAML'
keys:
  private_key_path: "./keys/client_private.pem"
  public_key_path: "./keys/client_public.pem"
acl:
  allowlist_path: "./keys/client_allowlist.json"
audit:
  enabled: false
transport:
  type: "http"
  retry_attempts: 0
YAML
node "$CLI/mcp-allowlist.js" add --config server_config.yml --key-file keys/client_public.pem --metadata '{"role":"trusted_client"}' >/dev/null
node "$CLI/mcp-allowlist.js" add --config client_config.yml --key-file keys/server_public.pem --metadata '{"role":"mcp_server"}' >/dev/null
CLIENT_FP="$(node "$CLI/mcp-keygen.js" --show-fingerprint keys/client_public.pem --format json | node -e 'let s="";process.stdin.on("data",c=>s+=c).on("end",()=>{const j=JSON.parse(s);console.log(j.fingerprint??j.sha256??"")})')"

# 2. An unmodified SDK server, and the gateway in front of it.
node "$ROOT/test/mcp/fixtures/plain-server.mjs" http > upstream.out 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q listening upstream.out 2>/dev/null && break; sleep 0.1; done
UPSTREAM="$(sed -n 's/^listening //p' upstream.out)"
node "$CLI/mcp-pki-gateway.js" --config server_config.yml --upstream "$UPSTREAM" --listen 127.0.0.1:0 2> gateway.err &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q "listening on" gateway.err 2>/dev/null && break; sleep 0.1; done
MCP_URL="$(sed -n 's/.*listening on \(http:[^ ]*\/mcp\).*/\1/p' gateway.err)"
[ -n "$MCP_URL" ] || { cat gateway.err >&2; echo "error: the gateway did not start" >&2; exit 1; }

# 3. The Inspector (CLI mode) starts mcp-pki-proxy as its stdio server, twice:
#    a) from the same kind of "mcpServers" JSON a desktop MCP app uses (--config mcp.json --server pki);
#    b) on one command line, with `--` before the proxy command: the Inspector takes --config for
#       itself, so `--cli mcp-pki-proxy --config …` without the `--` fails (issue 11.4).
cat > mcp.json <<JSON
{
  "mcpServers": {
    "pki": {
      "command": "node",
      "args": ["$CLI/mcp-pki-proxy.js", "--config", "$WORK/client_config.yml", "--server-url", "$MCP_URL", "--quiet"]
    }
  }
}
JSON
run_inspector() {
  MCP_INSPECTOR_SECRET_STORE=memory npx -y "$INSPECTOR" --cli --config mcp.json --server pki "$@"
}
run_inspector_dashdash() {
  MCP_INSPECTOR_SECRET_STORE=memory npx -y "$INSPECTOR" --cli "$@" -- node "$CLI/mcp-pki-proxy.js" --config "$WORK/client_config.yml" --server-url "$MCP_URL" --quiet
}
echo "== tools/list through mcp-pki-proxy ($MCP_URL)"
LIST="$(run_inspector --method tools/list)"
echo "$LIST"
echo "$LIST" | grep -q '"caller"' || { echo "error: tools/list did not list the caller tool" >&2; exit 1; }
echo "== tools/call caller"
CALL="$(run_inspector --method tools/call --tool-name caller)"
echo "$CALL"
if [ -n "$CLIENT_FP" ]; then
  echo "$CALL" | grep -q "$CLIENT_FP" || { echo "error: the tool did not see the client fingerprint $CLIENT_FP" >&2; exit 1; }
fi
echo "== tools/list, one command line: --cli --method tools/list -- node mcp-pki-proxy.js --config …"
DASH="$(run_inspector_dashdash --method tools/list)"
echo "$DASH"
echo "$DASH" | grep -q '"caller"' || { echo "error: the -- form did not list the caller tool" >&2; exit 1; }
echo "ok: the MCP Inspector listed and called tools through mcp-pki-proxy as $CLIENT_FP (mcp.json and -- forms)"
