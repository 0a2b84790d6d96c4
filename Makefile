# The two commands of the README, and a few more. Each creates .venv and installs what is
# needed the first time (and again whenever pyproject.toml changes).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install run test test-unit demo bench chaos down clean docs

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "evmonitor needs Python 3.11 or newer as '$(PYTHON)' (set PYTHON=...)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# the browser tests drive Debian's chromium (Playwright never downloads a browser here)
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; fi
	@test -x /usr/bin/chromium || echo "note: /usr/bin/chromium is missing; tests/integration/test_page.py needs it (apt-get install chromium)"
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

## the whole pipeline on the embedded stack, fed by the live simulator; Ctrl-C stops it all
run: $(STAMP)
	$(BIN)/evmonitor up --simulate

## every test: unit (pure) and integration (real PostgreSQL, Redis, Kafka API, Elasticsearch API, Celery)
test: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadfile

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit

## the issue's acceptance run: exact reconciliation of 2,000 sessions with chaos
demo: $(STAMP)
	$(BIN)/evmonitor demo --stations 50 --sessions 2000 --seed 11 --bad-ratio 0.05 --duplicate-ratio 0.05 --reorder

## the benchmark harness (about 9 minutes; BENCH_ARGS="--quick" for a 3.5-minute smoke run)
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

## the fault matrix: six faults, 20,000 events each
chaos: $(STAMP)
	$(BIN)/evmonitor chaos $(CHAOS_ARGS)

down: $(STAMP)
	$(BIN)/evmonitor down

## redraw docs/architecture.png and docs/layers.png from their Graphviz sources (Debian: graphviz)
docs: docs/architecture.png docs/layers.png

docs/%.png: docs/%.dot
	dot -Tpng -Gdpi=100 $< -o $@

clean:
	rm -rf $(VENV) .evmonitor .pytest_cache .hypothesis
