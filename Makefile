# Two commands set up a fresh machine: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean install browser lock upgrade dist

# Every version comes from uv.lock (exact, with hashes). pip fetches only uv itself, pinned with
# hashes in requirements-uv.txt (derived from the same lock); uv installs the rest, exactly.
$(STAMP): uv.lock requirements-uv.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements-uv.txt
	$(BIN)/uv sync --quiet --locked --extra dev --python $(BIN)/python
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/sanji demo --errands 40

# The screen tests drive Debian's Chromium; install it when missing (root, as on CI and dev machines).
browser:
	@test -x /usr/bin/chromium || { echo "installing Debian's chromium for the screen tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "could not install chromium: browser tests will skip (or fail if SANJI_REQUIRE_BROWSER=1)"; }

test: $(STAMP) browser
	$(BIN)/ruff check protocol sanji county_node town_node village_agent tests bench tools
	$(BIN)/mypy
	$(BIN)/pytest -q

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
