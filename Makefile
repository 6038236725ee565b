# Two commands for a newcomer: `make demo` and `make test`. The first use builds .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint types pytest bench clean chromium
CHROMIUM := /usr/bin/chromium

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "FlipSync needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -c 'from router.routing.static_embedder import load_table; load_table()'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/flipsync demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

# Two workers, a test module each at a time (module fixtures stay in one process): most tests
# wait on processes and the network, so two halve the wall time even on two cores.
TEST_WORKERS ?= 2

pytest: $(STAMP) chromium
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15

# tests/test_dashboard.py drives Debian's chromium through Playwright (it never downloads one).
chromium:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "Installing chromium for the dashboard test (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		echo "Installing chromium for the dashboard test (sudo apt-get)"; \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "*** $(CHROMIUM) is missing and this user cannot apt-get install it:"; \
		echo "*** run 'sudo apt-get install chromium', or tests/test_dashboard.py will fail."; \
	fi

test: lint types pytest

bench: $(STAMP)
	$(BIN)/python -m bench.overhead

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
