# Fiber Endpoints. `make bench` and `make test` do all set-up themselves (idempotent).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/fiber-endpoints
STAMP := $(VENV)/.installed
UV_BIN := $(VENV)/bin/uv
UV_PIN := $(shell grep -o '"uv==[^"]*"' pyproject.toml | tr -d '"')
# uv works on the venv above and never downloads a Python.
UV := UV_PROJECT_ENVIRONMENT=$(VENV) UV_PYTHON_DOWNLOADS=never $(UV_BIN)
GO_BIN := fiber/bin/fiber-endpoint
GO_SRC := $(wildcard fiber/*.go) fiber/go.mod fiber/go.sum
# Every Go module: the stack, and the helpers under docker/ and deploy/ (health check, compose
# and Kubernetes checkers); each is vetted by `lint` and tested by `go-test`.
GO_MODULES := fiber $(patsubst %/go.mod,%,$(wildcard docker/*/go.mod deploy/*/go.mod))
BENCH_ARGS ?=
TRACE_ARGS ?=

.PHONY: help setup lock bench notebook notebook-docs test lint test-unit test-contract test-slow go-test fixtures clean jaeger load-tools peers trace report

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(PY):
	python3 -m venv $(VENV)

# uv, the lock tool, at its one pin (pyproject.toml's dev extra), into the venv with pip; from
# then on `uv sync` keeps it, because the lock has it.
$(UV_BIN): | $(PY)
	$(PY) -m pip install -q --disable-pip-version-check '$(UV_PIN)'

# Exactly what uv.lock says, for the serving set plus the bench and dev extras (packages the lock
# does not have are removed); fails, changing nothing, when uv.lock is stale.
$(STAMP): pyproject.toml uv.lock | $(UV_BIN)
	$(UV) sync --locked --extra bench --extra dev
	touch $@

lock: $(UV_BIN) ## re-resolve uv.lock after changing dependencies in pyproject.toml
	$(UV) lock

# The same build command as the Dockerfile and stacks/fiber_go.py (BUILD_COMMAND).
$(GO_BIN): $(GO_SRC)
	cd fiber && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o bin/fiber-endpoint .

# The compose lab's engine (scripts/containers.sh): the one that answers `docker info`, else a
# private dockerd (Debian's docker.io, installed only with CI set or FIBER_ENDPOINTS_INSTALL_ENGINE=1),
# Compose v2, stand-in base images where no registry answers, and the images, all cached in
# ~/.cache/fiber-endpoints/containers; no engine is left running.
.PHONY: containers containers-prepare container-bench k8s-tools
containers-prepare: ## container engine (opt-in install), Compose v2, base stand-ins, images (cached)
	bash scripts/containers.sh prepare

containers: setup jaeger containers-prepare k8s-tools ## compose up --build --wait; contract, parity, bench, traces, limits, SIGTERM, KServe runtimes
	$(VENV)/bin/pytest -q tests/integration/test_containers_compose.py tests/integration/test_containers_k8s.py

container-bench: setup containers-prepare ## native, published-port and host-network containers in one bench report
	bash scripts/container-bench.sh $(BENCH_ARGS)

k8s-tools: $(STAMP) ## helm (Go module proxy) and a kserve venv for checking deploy/ (cached)
	bash scripts/install-k8s-tools.sh

.PHONY: prometheus
prometheus: ## a real Prometheus for the metrics test (Debian's package, unpacked into ~/.cache/fiber-endpoints/prometheus)
	bash scripts/install-prometheus.sh

jaeger: ## a real Jaeger (Go module proxy build, cached in ~/.cache/fiber-endpoints/jaeger)
	bash scripts/install-jaeger.sh

load-tools: ## wrk (Debian), oha (crates.io), vegeta (Go module proxy), the generators' trivial ceiling server
	bash scripts/install-load-tools.sh

# Each peer in its own virtualenv, from peers/<name>/requirements.txt (pinned with hashes), cached
# in ~/.cache/fiber-endpoints/peers; ~1.5 min cold, a check when cached (docs/peers.md).
peers: $(UV_BIN) ## the peer model servers bench measures: MLServer, a KServe SDK server, BentoML
	UV=$(UV_BIN) bash scripts/install-peers.sh

setup: $(STAMP) $(GO_BIN) load-tools peers ## venv + deps, Go build, load tools, peers (Jaeger: make jaeger)

bench: setup ## parity, then the benchmark on every stack; prints the tables
	$(CLI) bench $(BENCH_ARGS)

trace: setup jaeger ## every request of every stack traced into Jaeger; breakdown table + charts
	$(CLI) trace $(TRACE_ARGS)

notebook: setup jaeger ## open notebooks/benchmark.ipynb in JupyterLab (installs the notebook extra)
	$(UV) sync --locked --extra bench --extra dev --extra notebook
	$(VENV)/bin/jupyter lab notebooks/benchmark.ipynb

notebook-docs: setup jaeger ## run the notebook (full sizes) and render it into docs/notebook/
	rm -rf docs/notebook
	$(VENV)/bin/jupyter nbconvert --to markdown --execute --ExecutePreprocessor.timeout=1800 \
		--output-dir docs/notebook notebooks/benchmark.ipynb

report: $(STAMP) ## Markdown report + plots from the newest results (no rerun)
	$(CLI) report results/latest

lint: $(STAMP) ## uv.lock in sync with pyproject.toml, ruff, mypy, go vet, docs check
	$(UV) lock --check
	$(VENV)/bin/ruff check src tests scripts/check_docs.py
	$(VENV)/bin/ruff format --check src tests scripts/check_docs.py
	$(VENV)/bin/mypy
	for m in $(GO_MODULES); do (cd $$m && go vet ./...) || exit 1; done
	$(PY) scripts/check_docs.py

# Test tiers (tests/conftest.py): each prints "tier NAME: N s" last and fails over its budget
# (tier_budgets_s in pyproject.toml). A tier that selects no tests passes.
test-unit: $(STAMP) ## in-process tests, seconds
	$(VENV)/bin/pytest -q --tier unit

test-contract: $(STAMP) $(GO_BIN) ## every stack as a process on loopback: contract suite, parity
	$(VENV)/bin/pytest -q --tier contract

test-slow: setup jaeger prometheus containers-prepare k8s-tools ## Jaeger, load lab, coordinated omission, container commands, bench smoke, compose lab
	$(VENV)/bin/pytest -q --tier slow

go-test: $(GO_BIN) ## go test -race in every Go module (GO_MODULES)
	for m in $(GO_MODULES); do (cd $$m && go test -race -count=1 ./...) || exit 1; done

test: setup lint go-test test-unit test-contract test-slow ## lint, Go tests, then the tiers

fixtures: $(STAMP) ## retrain the small binary/multiclass test models and their golden files
	$(CLI) train --objective binary --samples 20000 --trees 50 --threads 1 --output models/binary/model.txt
	$(CLI) train --objective multiclass --samples 20000 --trees 50 --threads 1 --output models/multiclass/model.txt

clean: ## remove the virtualenv, build outputs and results
	rm -rf $(VENV) fiber/bin results .mypy_cache .ruff_cache .pytest_cache
