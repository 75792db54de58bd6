# mcp-pki-auth — every target installs what it needs from the lockfile first.
SHELL := /bin/bash
# Spec output, failures in full at the end, Node's closing counts, then one `N passed, N failed` line.
# The tests run as JavaScript from .test-tree (scripts/build-test-tree.mjs: the repository with each
# .ts transpiled once), not through tsx in every test process; the reporter maps stack lines to .ts.
# Test files run at once. Many wait on sockets, timers and child processes, so more files than
# cores keep both cores busy; override with `make test TEST_CONCURRENCY=2` on a slower machine.
TEST_CONCURRENCY ?= 4
# The suite talks only to loopback servers with its own test CAs. Node 20 reads NODE_EXTRA_CA_CERTS
# in every process at start-up: with Debian's whole bundle (as some hosts set it) that is ~50 ms of
# CPU per process, and the suite starts about 800; the test targets run without it.
NODE_TEST := env -u NODE_EXTRA_CA_CERTS node --test --test-concurrency=$(TEST_CONCURRENCY) --test-timeout=120000 --test-reporter=./scripts/test-reporter.mjs
# The test files under the given folders of .test-tree, in a stable order.
tests_in = $$(find $(addprefix .test-tree/,$(1)) -name '*.test.js' | sort)

.PHONY: install build test-tree demo test test-unit test-integration test-security test-cli test-performance test-cross-language setup-test-env lint typecheck bench pack redis clean

# npm ci writes node_modules/.package-lock.json last: when it is newer than package-lock.json the
# tree was installed from this lockfile (by us or by README's `npm ci`) and is not reinstalled.
node_modules/.install-stamp: package-lock.json
	@if [ -f node_modules/.package-lock.json ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then \
	  echo "node_modules is already installed from package-lock.json"; \
	else npm ci --no-audit --no-fund; fi
	@touch $@

install: node_modules/.install-stamp

build: install
	npx tsc -p tsconfig.json
	node scripts/bundle-cli.mjs

# The repository with every .ts transpiled once, which the test targets run (see NODE_TEST).
test-tree: install
	node scripts/build-test-tree.mjs

# The main job: a whole mutual authentication on embedded defaults, in a temporary folder.
demo: build
	node dist/cli/demo.js

redis:
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no
	@for i in $$(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && exit 0; sleep 0.1; done; echo "redis did not start" >&2; exit 1

# Every test suite (unit, integration, security, CLI, MCP end to end).
test: build redis test-tree
	$(NODE_TEST) $(call tests_in,test)

test-unit: build test-tree
	$(NODE_TEST) $(call tests_in,test/unit)

test-integration: build redis test-tree
	$(NODE_TEST) $(call tests_in,test/integration test/mcp)

test-security: build redis test-tree
	$(NODE_TEST) $(call tests_in,test/security)

test-cli: build redis test-tree
	$(NODE_TEST) $(call tests_in,test/cli)

# The quick benchmark run (a few minutes; `make bench` is the full one, see docs/benchmarks.md).
test-performance: build redis
	node --import tsx bench/run.ts --quick

# The handshake test vectors (test/vectors) checked by an independent node:crypto implementation.
test-cross-language: test-tree
	$(NODE_TEST) .test-tree/test/unit/handshake/vectors.test.js

# What the tests need: the npm packages, a Redis on 127.0.0.1:6379 and Prometheus (installed with
# apt-get when missing). CI (.ci/run) calls this target, and only this one, to prepare the machine.
setup-test-env: install
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || command -v redis-server >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq redis-server; \
	  else echo "redis-server is not installed: sudo apt-get install redis-server (or brew install redis)" >&2; exit 1; fi; }
	@# The metrics tests run a real Prometheus and promtool (Debian's prometheus package has both).
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus; \
	  else echo "prometheus is not installed: sudo apt-get install prometheus" >&2; exit 1; fi; }
	@$(MAKE) --no-print-directory redis

typecheck: install
	npx tsc -p tsconfig.test.json

lint: install typecheck
	npx eslint .

bench: build redis
	node --import tsx bench/run.ts

# The npm package as a tarball (mcp-pki-auth-<version>.tgz in this folder): npm install ./mcp-pki-auth-*.tgz
pack: install
	rm -rf dist && npx tsc -p tsconfig.json
	npm pack --loglevel=warn

clean:
	rm -rf dist .test-tree mcp-pki-auth-*.tgz
