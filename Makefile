# Two commands set up a fresh machine: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean install browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
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
	$(BIN)/ruff check protocol sanji county_node town_node village_agent tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench.apply_rate

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
