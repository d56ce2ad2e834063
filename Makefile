# Two commands for a new user: `make run` (chat on seeds/) and `make test`.
# Both set up .venv on first use: torch (CPU) first, then the project with its extras.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_SPEC ?= torch==2.13.0
HOST ?= 127.0.0.1
PORT ?= 7860

.PHONY: help setup run test lint bench eval clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q "$(TORCH_SPEC)"
	$(BIN)/pip install --disable-pip-version-check -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/rag chat seeds/ --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python -m eval.benchmarks.indexing

eval: $(STAMP)
	$(BIN)/rag eval

clean:
	rm -rf .rag runs test-artifacts

help:
	@echo "make run    set up .venv on first use, index seeds/, open the chat on http://$(HOST):$(PORT)"
	@echo "            (make run HOST=0.0.0.0 PORT=8080: logins on, create a user first: rag users add NAME --admin)"
	@echo "make test   set up .venv on first use, then ruff (lint + format check) and the whole test suite"
	@echo "make setup  only create .venv: $(TORCH_SPEC) (CPU) first, then the project with its extras"
	@echo "make lint   fix style with ruff"
	@echo "make eval   rag eval: golden sets + PIAF dev, report in runs/"
	@echo "make bench  indexing benchmark (eval.benchmarks.indexing)"
	@echo "make clean  delete .rag (the index, uploads, chat accounts and conversations), runs/ and test-artifacts/"

