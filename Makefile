# The few targets people run. `make tracks` and `make test` each install everything first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROFILES := --profile phone --profile bedside --profile gym

.PHONY: install tracks test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install-system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	scripts/install-system-deps.sh $(BIN)/pip
	scripts/install-browser.sh || echo "coachtrack: no chromium; the browser tests will be skipped" >&2
	touch $@

tracks: install
	$(BIN)/coachtrack build routines $(PROFILES)

test: install
	$(BIN)/pytest -q

bench: install
	$(BIN)/python -m bench.run --repeat 3 --long-hours 3

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy src

clean:
	rm -rf $(VENV) audio_out/*/ .pytest_cache .mypy_cache .ruff_cache
