# mcp-pki-auth — every target installs what it needs from the lockfile first.
SHELL := /bin/bash
NODE_TEST := node --import tsx --test --test-concurrency=2 --test-timeout=120000

.PHONY: install build demo test test-unit test-integration test-security test-cli lint typecheck bench redis clean

node_modules/.install-stamp: package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

install: node_modules/.install-stamp

build: install
	npx tsc -p tsconfig.json

# The main job: a whole mutual authentication on embedded defaults, in a temporary folder.
demo: build
	node dist/cli/demo.js

redis:
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no
	@for i in $$(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && exit 0; sleep 0.1; done; echo "redis did not start" >&2; exit 1

# Every test suite (unit, integration, security, CLI, MCP end to end).
test: build redis
	$(NODE_TEST) $$(find test -name '*.test.ts' | sort)

test-unit: install
	$(NODE_TEST) $$(find test/unit -name '*.test.ts' | sort)

test-integration: build redis
	$(NODE_TEST) $$(find test/integration test/mcp -name '*.test.ts' 2>/dev/null | sort)

test-security: build
	$(NODE_TEST) $$(find test/security -name '*.test.ts' | sort)

test-cli: build
	$(NODE_TEST) $$(find test/cli -name '*.test.ts' | sort)

typecheck: install
	npx tsc -p tsconfig.test.json

lint: install typecheck
	npx eslint .

bench: build redis
	node --import tsx bench/run.ts

clean:
	rm -rf dist
