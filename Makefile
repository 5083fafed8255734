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
# The conformance judge (HAPI FHIR validator, Java 17 + Maven); Maven's downloads are cached
# beside FerretDB so that a second build needs no network.
MAVEN_REPO ?= $(HOME)/.cache/billable/m2
JUDGE_DIR  := tests/conformance/validator
JUDGE      := $(JUDGE_DIR)/target/billable-conformance-1.0.0.jar

.PHONY: serve test lint typecheck unit ferretdb browser judge conformance bench clean

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

# Chromium and its driver from Debian's packages, for the coder app's browser tests
# (tests/webapp); Selenium is pointed at these binaries and downloads nothing itself.
CHROMIUM     ?= /usr/bin/chromium
CHROMEDRIVER ?= /usr/bin/chromedriver
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@if [ -x "$(CHROMIUM)" ] && [ -x "$(CHROMEDRIVER)" ]; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium and chromium-driver"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver; \
	else echo "apt-get not found: install Chromium and chromedriver for the browser tests"; exit 1; fi

lint: $(STAMP)
	$(VENV)/bin/ruff check server mappings terminology tests bench
	$(VENV)/bin/ruff format --check server mappings terminology tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy server mappings terminology

unit: $(STAMP) ferretdb browser
	BILLABLE_REQUIRE_BROWSER=1 BILLABLE_CHROMIUM=$(CHROMIUM) BILLABLE_CHROMEDRIVER=$(CHROMEDRIVER) \
	  BILLABLE_FERRETDB_BIN=$(FERRETDB) $(PY) -m pytest -q -m "not conformance"

$(JUDGE): $(JUDGE_DIR)/pom.xml $(wildcard $(JUDGE_DIR)/src/main/java/org/billable/conformance/*.java)
	@command -v mvn >/dev/null || { echo "Maven (mvn) and Java 17 are needed for the judge"; exit 1; }
	mvn -B -q -Dmaven.repo.local=$(MAVEN_REPO) -f $(JUDGE_DIR)/pom.xml package
	touch $(JUDGE)

judge: $(JUDGE)

# The independent judge: HAPI FHIR's validator over everything Billable produces (both backends).
conformance: $(STAMP) ferretdb judge
	BILLABLE_REQUIRE_CONFORMANCE=1 BILLABLE_FERRETDB_BIN=$(FERRETDB) \
	  $(PY) -m pytest -q -m conformance tests/conformance

test: lint typecheck unit conformance

# One table of every performance figure (issues 17 and 18) on a Synthea population:
# `make bench POPULATION=/path/to/fed` (bench/run_all.py; BENCH_ARGS="--only read_perf").
# The read bench drives wrk (Debian package; installed here when apt-get can) and py-spy.
POPULATION ?= /work/pop/synthea-100/fed
bench: $(STAMP)
	@command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null 2>&1 || \
	  echo "wrk not found (apt-get install wrk): the read figures will be skipped"
	@$(VENV)/bin/py-spy --version >/dev/null 2>&1 || $(PY) -m pip install --quiet py-spy || true
	$(PY) -m bench.run_all --population $(POPULATION) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
