# The two commands of the README (`make up`, `make test`) install what is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_VERSION := 0.13.8
# uv from PATH, else one of our own in .tools (a venv: works where pip --user is refused,
# e.g. Debian's externally managed python3, and needs no change to PATH)
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: help system setup models up test test-fast bench lint proto clean

help:
	@echo "make up        start the whole platform locally (installs what is missing)"
	@echo "make test      install what is missing and run the whole test suite"
	@echo "make test-fast the suite without slow model/browser tests"
	@echo "make bench     run the benchmarks: bench/results/latest.json, docs/benchmarks.md"
	@echo "make lint      ruff and mypy"

.tools/bin/uv:
	@rm -rf .tools; python3 -m venv .tools 2>/dev/null || { rm -rf .tools; \
		echo "installing python3-venv (apt): python3 -m venv needs it"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq python3-venv >/dev/null \
		&& python3 -m venv .tools; }
	.tools/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

# Debian packages the browser and WebRTC tests need (docs/testing.md): chromium, iproute2.
system:
	@missing=""; command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v ip >/dev/null || missing="$$missing iproute2"; \
	command -v unshare >/dev/null || missing="$$missing util-linux"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing (apt)"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# uv.lock is committed; --frozen installs exactly it.
setup: $(UV)
	$(UV) sync --frozen --all-packages --all-extras --quiet

models: setup
	$(PY) -m stella_services models prepare

up: models
	$(PY) -m stella_services up

test: models system
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

bench: models
	$(PY) -m bench

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy contracts/src sdk/src services/src

proto: setup
	$(PY) scripts/gen_proto.py

clean:
	rm -rf .venv .tools .pytest_cache .mypy_cache .ruff_cache
