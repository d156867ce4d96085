# One command runs the bot, one runs the tests; each creates the virtual environment it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run console test lint typecheck check fmt bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/gembot run

console: $(STAMP)
	$(BIN)/gembot console

lint: $(STAMP)
	$(BIN)/ruff check bot adapters tests benchmarks
	$(BIN)/ruff format --check bot adapters tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy bot adapters

# Three workers on two cores: many tests wait on subprocesses, sockets and timers. Each worker takes whole
# files (module-scoped fixtures start gembot once per file), the longest first (tests/conftest.py).
test: lint typecheck
	$(BIN)/pytest -q -n 3 --dist loadfile --no-loadscope-reorder

fmt: $(STAMP)
	$(BIN)/ruff format bot adapters tests benchmarks
	$(BIN)/ruff check --fix bot adapters tests benchmarks

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
