# Billable: `make serve` runs the server on the embedded store, `make test` runs everything.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# `make serve` needs only the runtime; `make test` adds the test extras on top.
RUNTIME_STAMP := $(VENV)/.installed-runtime
# FerretDB (a MongoDB wire-protocol server) for the Mongo test leg, built with Go.
FERRETDB_VERSION := v1.24.2
TOOLS_DIR ?= $(HOME)/.cache/billable/bin
FERRETDB  := $(TOOLS_DIR)/ferretdb

.PHONY: serve test lint typecheck unit ferretdb clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUNTIME_STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e .
	touch $(RUNTIME_STAMP)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

serve: $(RUNTIME_STAMP)
	$(VENV)/bin/billable serve

# Installs FerretDB when Go is present; without Go the Mongo tests skip and say why.
# (A plain `go install .../cmd/ferretdb@v1.24.2` builds a binary that panics at start-up
# for want of its generated version file; the script writes that file, then builds.)
ferretdb:
	@if "$(FERRETDB)" --version >/dev/null 2>&1; then :; \
	elif command -v go >/dev/null 2>&1; then \
	  echo "building FerretDB $(FERRETDB_VERSION) into $(TOOLS_DIR)"; \
	  bash tests/support/build-ferretdb.sh $(FERRETDB_VERSION) $(FERRETDB); \
	else echo "Go not found: the MongoDB tests will be skipped"; fi

lint: $(STAMP)
	$(VENV)/bin/ruff check server mappings terminology tests bench
	$(VENV)/bin/ruff format --check server mappings terminology tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy server mappings terminology

unit: $(STAMP) ferretdb
	BILLABLE_FERRETDB_BIN=$(FERRETDB) $(PY) -m pytest -q

test: lint typecheck unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
