# One front door for everything: `make run` (the demo crawl) and `make test` work on a fresh
# clone; `make check` is what CI runs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint typecheck check clean test-pythons

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/python -m crawler.demo

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check crawler tests
	$(BIN)/ruff format --check crawler tests
	$(BIN)/hadolint Dockerfile

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

# The Pythons we claim (pyproject's requires-python; DESIGN.md "Works on every Python we
# claim"): the oldest 3.11 build users have, Debian 12's own python3 (3.11.2), and 3.12 and 3.13
# (pyenv's, on these machines). Each runs the whole suite in a virtual environment of its own,
# .venv-X.Y. A Python that is missing fails the target: a claim nobody tested is not kept.
PYENV_VERSIONS := $(or $(PYENV_ROOT),$(HOME)/.pyenv)/versions
PYTHONS ?= /usr/bin/python3.11 \
	$(or $(lastword $(sort $(wildcard $(PYENV_VERSIONS)/3.12.*/bin/python3.12))),python3.12) \
	$(or $(lastword $(sort $(wildcard $(PYENV_VERSIONS)/3.13.*/bin/python3.13))),python3.13)

test-pythons:
	@for py in $(PYTHONS); do \
	    command -v $$py >/dev/null || { echo "test-pythons: $$py is not installed"; exit 1; }; \
	    version=$$($$py -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])'); \
	    echo "== Python $$version ($$py)"; \
	    $(MAKE) --no-print-directory test PYTHON=$$py VENV=.venv-$$version || exit 1; \
	done

# A real site for tests/test_real_site.py: Python's documentation as Debian packages it
# (python3.11-doc), unpacked into build/ rather than installed, because installing it also
# upgrades the system's python3.11, the oldest build the tests run on. Needs `apt-get update`.
DOCS_SITE := build/python-docs
.PHONY: docs-site
docs-site: $(DOCS_SITE)/.unpacked

$(DOCS_SITE)/.unpacked:
	rm -rf $(DOCS_SITE) && mkdir -p $(DOCS_SITE)
	cd $(DOCS_SITE) && apt-get download -qq python3.11-doc
	dpkg-deb -x $(DOCS_SITE)/python3.11-doc_*.deb $(DOCS_SITE)
	rm $(DOCS_SITE)/python3.11-doc_*.deb
	touch $@

clean:
	rm -rf $(VENV) .venv-3.* .pytest_cache .mypy_cache .ruff_cache demo-output

# The container job (docs/operations.md, "Container job"). Here (no Docker engine, no image registry) the
# image is built and tested with podman on an offline Debian base; these need root and podman.
# Elsewhere: `docker build -t crawler .` uses the Dockerfile's default base image.
.PHONY: docker docker-test lock
DOCKER_TEST := $(BIN)/python scripts/docker-test.py
UV_VERSION  := 0.13.9
LOCK_VENV   := build/lock-venv

docker: install
	$(DOCKER_TEST) --build-only

docker-test: install
	$(DOCKER_TEST)

# requirements.lock: pyproject.toml's dependencies plus requirements.in (what only the image
# needs), every version pinned with the hashes of all its files. Existing pins are kept;
# `make lock LOCK_FLAGS=--upgrade` moves everything to the newest releases.
lock:
	test -x $(LOCK_VENV)/bin/uv || $(PYTHON) -m venv $(LOCK_VENV)
	test -x $(LOCK_VENV)/bin/uv || $(LOCK_VENV)/bin/python -m pip install --quiet uv==$(UV_VERSION)
	$(LOCK_VENV)/bin/uv pip compile pyproject.toml requirements.in --universal \
	    --python-version 3.11 --generate-hashes --no-cache --quiet \
	    --custom-compile-command "make lock" $(LOCK_FLAGS) --output-file requirements.lock

# The throughput benchmark (docs/performance.md): installs the bench extra (Scrapy, crawlee,
# aiohttp, matplotlib, py-spy), then runs the four scenarios and the single-host comparison.
# Results in build/bench/ (results.json, pages-per-second.png, logs). BENCH_FLAGS adds options.
.PHONY: bench
BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/crawl bench --vs scrapy --vs crawlee --vs aiohttp --vs httpx $(BENCH_FLAGS)
