# procmap: `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# compat: a plain path entry; the default editable finder adds ~15 ms to every start.
	$(BIN)/pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	touch $@

venv: $(STAMP) ## create the virtual environment and install procmap into it

run: $(STAMP) ## show procmap's own map: `procmap self`
	$(BIN)/procmap self

samples: ## build the lesson's C programs in every link mode (samples/bin/)
	$(MAKE) -C samples

# The system packages the tests use: compilers and the samples' allocators and
# runtimes, and the tools procmap is compared against.  apt, as root (CI runs
# it first); elsewhere it says what to install.  Tests that need a package
# that is missing skip and name it.
DEPS := gcc libc6-dev make binutils lld procps util-linux strace gdb jq smem \
        libjemalloc-dev libgoogle-perftools-dev libmimalloc-dev golang-go default-jdk-headless nodejs
deps: ## install the system packages the tests use (apt, as root)
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends $(DEPS) >/dev/null; \
	else echo "make deps: run it as root on a Debian or Ubuntu machine, or install: $(DEPS)"; fi

# One worker per core, at most four: the live tests wait on real processes and clocks.
test: lint samples ## lint, build the samples and run the whole test suite
	$(BIN)/pytest -q -n auto --maxprocesses 4

$(VENV)/.bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]' --config-settings editable_mode=compat
	touch $@

bench: $(VENV)/.bench samples ## measure procmap against its floors (pmap -x, the kernel's read of maps)
	$(BIN)/python benchmarks/run.py

lint: $(STAMP) ## ruff check, ruff format --check, mypy --strict (all but render/ and cli/)
	$(BIN)/ruff check procmap tests benchmarks
	$(BIN)/ruff format --check procmap tests benchmarks
	$(BIN)/mypy

clean: ## remove the venv, the built samples and caches
	rm -rf $(VENV) samples/bin .pytest_cache .hypothesis .mypy_cache .ruff_cache
	find . -name __pycache__ -prune -exec rm -rf {} +

.PHONY: help venv run samples deps test bench lint clean
