# Two commands set up a fresh machine: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: bytecode demo test lint typecheck bench clean install browser lock upgrade axe screenshots screenshots-city dist

# Every version comes from uv.lock (exact, with hashes). pip fetches only uv itself, pinned with
# hashes in requirements-uv.txt (derived from the same lock); uv installs the rest, exactly.
$(STAMP): uv.lock requirements-uv.txt pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements-uv.txt
	$(BIN)/uv sync --quiet --locked --extra dev --python $(BIN)/python --compile-bytecode
	touch $(STAMP)

install: $(STAMP)

# Bytecode for our own packages, compiled ahead (only what changed since the last run). Where the environment
# sets PYTHONDONTWRITEBYTECODE (this project's CI machines do) Python never writes it, and every process a test
# or the demo starts compiled every module again: 3 s to import a serving node instead of under 1 s.
# (The installed packages get theirs from `uv sync --compile-bytecode` above.)
OWN_PACKAGES := protocol sanji county_node town_node village_agent devtools bench tools tests
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q -j 0 $(OWN_PACKAGES)

demo: $(STAMP) bytecode
	$(BIN)/sanji demo --errands 40

# The screen tests drive Debian's Chromium; install it when missing (root, as on CI and dev machines), with a
# CJK font: without one a fresh Debian renders every Chinese character as an empty box in the screenshots.
browser:
	@{ test -x /usr/bin/chromium && fc-list :lang=zh | grep -q .; } || { echo "installing Debian's chromium and fonts-noto-cjk for the screen tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null) \
	  || echo "could not install chromium or the CJK font: browser tests will skip (or fail if SANJI_REQUIRE_BROWSER=1)"; }

# axe-core for the accessibility checks, vendored in tests/screens/vendor (see its README): fetched once from
# the npm registry's tarball into a temporary directory, never at test time.
AXE_VERSION ?= 4.14.1
axe:
	@tmp=$$(mktemp -d) && cd $$tmp && npm pack --silent axe-core@$(AXE_VERSION) >/dev/null && tar xzf axe-core-*.tgz \
	  && cp package/axe.min.js $(CURDIR)/tests/screens/vendor/axe.min.js && rm -rf $$tmp \
	  && sha256sum $(CURDIR)/tests/screens/vendor/axe.min.js

# docs/screens/*.png: every desk page and the public pages, in Chinese, from a real node in Chromium.
screenshots: $(STAMP) browser
	$(BIN)/python -m tools.screenshots docs/screens

screenshots-city: $(STAMP) browser
	$(BIN)/python -m tools.screenshots --city docs/screens

test: $(STAMP) browser bytecode
	$(BIN)/ruff check protocol sanji county_node town_node village_agent devtools tests bench tools
	$(BIN)/mypy
	$(BIN)/pytest -q --durations=20

# The one way to upgrade: move the lock to the newest versions the ranges in pyproject.toml allow,
# re-derive uv's own pin, reinstall exactly that, and run the whole suite on it.
lock upgrade: $(STAMP)
	$(BIN)/uv lock --upgrade
	$(BIN)/python tools/uv_bootstrap.py > requirements-uv.txt
	$(MAKE) test

# A wheel with templates, migrations and the catalogue, plus the locked runtime requirements;
# proved by installing both into a clean venv and serving a village from it (tools/dist_check.py).
dist: $(STAMP)
	$(BIN)/python tools/dist_check.py

bench: $(STAMP)
	$(BIN)/python -m bench.apply_rate

clean:
	rm -rf $(VENV) var dist build .pytest_cache .mypy_cache .ruff_cache
