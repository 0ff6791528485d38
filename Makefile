# Vigil: make setup | run | test | lint | proto | proto-check | bench | helm-lint | soak
SHELL := /bin/bash
UV ?= uv
PY := .venv/bin/python
export UV_LINK_MODE ?= copy

.PHONY: setup run test lint proto proto-check bench helm-lint soak

# setup: install uv if missing and sync every workspace member (and dev tools) into .venv
setup:
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@$(UV) sync --frozen --all-packages --quiet

# run: start the whole platform on this machine (broker, S3, five services) with a demo city
run: setup
	.venv/bin/vigil up --demo

# test: run every test (unit, contract, integration) on the real embedded stack
test: setup
	.venv/bin/pytest

# lint: ruff over the whole tree (generated code excluded)
lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

# proto: regenerate libs/protos/src from protos/ (never hand-edit generated code)
proto: setup
	rm -rf libs/protos/src/vigil
	$(PY) scripts/gen_protos.py libs/protos/src

# proto-check: fail when the committed generated code is stale
proto-check: setup
	@tmp=$$(mktemp -d) && $(PY) scripts/gen_protos.py $$tmp >/dev/null && \
	  diff -r -x __pycache__ $$tmp/vigil libs/protos/src/vigil && rm -rf $$tmp && echo "generated code is fresh"

# bench: run every benchmark and write bench/REPORT.md
bench: setup
	$(PY) -m vigil_kit.bench.run --out bench/REPORT.md

# helm-lint: the offline deployment checks alone (chart lint/render/validate, policies, skaffold, images)
helm-lint: setup
	.venv/bin/pytest deploy

# soak: the fault-injection and fuzz suites, longer (more cameras, kills and examples; same assertions)
soak: setup
	VIGIL_FAULT_CAMERAS=100 VIGIL_FAULT_SEGMENTS=20 VIGIL_FAULT_KILLS=5 VIGIL_FUZZ_EXAMPLES=200 \
	  .venv/bin/pytest -s integration_tests/test_fault_injection.py integration_tests/test_fuzz_rpcs.py
