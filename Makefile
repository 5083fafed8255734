# Billable: `make serve` runs the server on the embedded store, `make test` runs everything.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# FerretDB (a MongoDB wire-protocol server) for the Mongo test leg, built with Go.
FERRETDB_VERSION := v1.24.2
TOOLS_DIR ?= $(HOME)/.cache/billable/bin
FERRETDB  := $(TOOLS_DIR)/ferretdb

.PHONY: serve test lint typecheck unit ferretdb clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/billable serve

# Installs FerretDB when Go is present; without Go the Mongo tests skip and say why.
ferretdb:
	@if [ -x "$(FERRETDB)" ]; then :; \
	elif command -v go >/dev/null 2>&1; then \
	  echo "installing FerretDB $(FERRETDB_VERSION) into $(TOOLS_DIR)"; \
	  mkdir -p $(TOOLS_DIR) && GOBIN=$(TOOLS_DIR) go install github.com/FerretDB/FerretDB/cmd/ferretdb@$(FERRETDB_VERSION); \
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
