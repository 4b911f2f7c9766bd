# Two commands set everything up on a fresh machine:
#   make demo   — creates .venv on first use, runs the whole pipeline on sample_data/
#   make test   — creates .venv on first use, runs the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format bench plan clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/campaign demo --out demo-output

plan: $(STAMP)
	$(BIN)/campaign plan sample_data/contacts.xlsx sample_data/contacts.csv -t templates/marketing.txt

test: $(STAMP)
	$(BIN)/ruff check campaign tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not serial" --ignore=tests/browser
	$(BIN)/python -m pytest -m serial --ignore=tests/browser
	$(BIN)/python -m pytest tests/browser

lint: $(STAMP)
	$(BIN)/ruff check campaign tests bench
	$(BIN)/ruff format --check campaign tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format campaign tests bench
	$(BIN)/ruff check --fix campaign tests bench

bench: $(STAMP)
	for f in bench/bench_*.py; do $(BIN)/python $$f; done

clean:
	rm -rf $(VENV) demo-output .pytest_cache
