# Two commands do all the set-up on a fresh machine:
#   make demo   start the embedded Triton server and run the tutorial's burst through it
#   make test   lint, type-check and run the whole test suite (unit + integration + Locust)
# Everything else here is a step those two call.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lint typecheck unit integration setup browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

# Prepares the embedded server once per machine (server binary, model environment, tokenizer, engine),
# cached under ~/.cache/trtclient (or $$TRTCLIENT_CACHE_DIR).
setup: $(STAMP)
	$(BIN)/trtclient setup

# Headless Chromium opens the HTML reports in the tests; Debian's package, installed when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -q && \
		$(SUDO) apt-get install -y -q --no-install-recommends chromium; }

demo: setup
	$(BIN)/trtclient bench

# ruff, then the import contracts of pyproject.toml (floors, forbidden imports, no cycles).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PYTHONPATH=locustfiles $(BIN)/lint-imports

# Strict on the packages; the tests are checked with untyped definitions allowed.
TEST_MYPY := --allow-untyped-defs --allow-incomplete-defs --allow-untyped-calls --allow-untyped-decorators \
	--allow-any-generics --allow-subclassing-any --no-warn-return-any --no-warn-unused-ignores \
	--check-untyped-defs

typecheck: $(STAMP)
	$(BIN)/mypy trtclient locustfiles benchmarks
	MYPYPATH=tests/fakes:locustfiles $(BIN)/mypy $(TEST_MYPY) tests/unit --exclude 'tests/unit/fixtures/'
	MYPYPATH=tests/fakes:locustfiles $(BIN)/mypy $(TEST_MYPY) tests/integration tests/fakes \
		--exclude 'tests/fakes/(inflight_batcher_llm_r24_04|user_repository)/'

test: setup browser lint typecheck
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: setup
	$(BIN)/pytest tests/integration

bench: setup
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .import_linter_cache .grimp_cache
