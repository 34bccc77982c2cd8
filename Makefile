# The two commands of the README: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,pg,video]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/xdsi serve

# The layer rule of the package (pyproject.toml, [tool.importlinter]), ruff's rules and mypy's types.
lint: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check xdsi bench tests
	$(BIN)/mypy

# Two workers by default (tests/conftest.py keeps each module on one worker); TEST_WORKERS=0 runs
# in one process.
TEST_WORKERS ?= 2
test: lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
