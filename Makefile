# Utilization review platform. `make run` and `make test` set themselves up.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTOS := $(shell find protos -name '*.proto')
GEN_STAMP := gen/.stamp

.PHONY: help setup protos lint test test-unit test-timetravel run demo bench kafka-start kafka-stop pg-start pg-stop clean

help:
	@echo "make run    - start Kafka + the three services on SQLite, the workbench (http://127.0.0.1:8080/) and the FHIR door (http://127.0.0.1:8090/fhir), submit the sample workload, keep serving"
	@echo "make demo   - the same, exits after the summary"
	@echo "make test   - unit, integration and end-to-end tests (real Kafka, real PostgreSQL)"
	@echo "make test-timetravel - unit and integration tests with the clock moved to each of TRAVEL_DATES"
	@echo "make bench  - end-to-end throughput/latency on PostgreSQL next to raw ceilings"
	@echo "make lint   - ruff + mypy + import-linter (layers)"
	@echo "make protos - regenerate Python code from protos/"

$(STAMP): pyproject.toml
	test -x $(BIN)/pip || $(PY) -m venv --clear $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

$(GEN_STAMP): $(PROTOS) $(STAMP) protos/generate.py
	$(BIN)/python protos/generate.py
	$(BIN)/python -m pip install -q -e . --no-deps
	touch $(GEN_STAMP)

setup: $(STAMP) $(GEN_STAMP)

protos: $(STAMP)
	$(BIN)/python protos/generate.py
	touch $(GEN_STAMP)

lint: setup
	$(BIN)/ruff check services tests deploy protos
	$(BIN)/mypy services tests
	$(BIN)/lint-imports --no-logo

kafka-start: setup
	deploy/kafka/kafka.sh start

kafka-stop:
	deploy/kafka/kafka.sh stop

pg-start:
	deploy/postgres/pg.sh start

pg-stop:
	deploy/postgres/pg.sh stop

test-unit: setup
	$(BIN)/pytest tests/unit -q

test: setup
	deploy/kafka/kafka.sh start
	deploy/postgres/pg.sh start
	$(BIN)/pytest -q

# Dates whose handling has gone wrong before, each a whole run of the unit and integration tiers
# with the wall clock moved there (UR_TEST_TRAVEL_TO, tests/conftest.py): New Year's Eve 2027,
# the evening before the US spring-forward with New York as the local zone, and 2031. The dates run
# side by side (each run makes its own databases and topics; most of a run is spent waiting on the
# broker), each into its own log, printed whole when that run ends; TRAVEL_JOBS=1 runs them in turn.
TRAVEL_DATES ?= 2027-12-31T23:30:00+00:00 2028-03-11T22:30:00[America/New_York] 2031-06-15T12:00:00+00:00
TRAVEL_JOBS ?= 3

test-timetravel: setup
	deploy/kafka/kafka.sh start
	deploy/postgres/pg.sh start
	@set -f; mkdir -p var/timetravel; \
	printf '%s\n' $(TRAVEL_DATES) | xargs -P $(TRAVEL_JOBS) -I WHEN sh -c '\
	    log="var/timetravel/$$(echo "WHEN" | tr -c "A-Za-z0-9\n" _).log"; \
	    UR_TEST_TRAVEL_TO="WHEN" $(BIN)/pytest tests/unit tests/contract tests/integration -q -p no:cacheprovider >"$$log" 2>&1; rc=$$?; \
	    echo "==== unit, contract and integration tests at WHEN (exit $$rc)"; cat "$$log"; exit $$rc' \
	    || { echo "==== time travel: tests failed at one or more dates (above)"; exit 1; }

# make passes no SIGTERM or SIGHUP on to a recipe: exec makes the platform (and the bench) make's
# child, and --stop-with-parent ends it, stopping its services, when make ends.
run: setup
	deploy/kafka/kafka.sh start
	exec $(BIN)/python -m services.cli.platform run --stop-with-parent

demo: setup
	deploy/kafka/kafka.sh start
	exec $(BIN)/python -m services.cli.platform demo --stop-with-parent

bench: setup
	deploy/kafka/kafka.sh start
	deploy/postgres/pg.sh start
	exec $(BIN)/python -m services.cli.bench --stop-with-parent $(BENCH_ARGS)

clean:
	-deploy/kafka/kafka.sh stop
	-deploy/postgres/pg.sh stop
	rm -rf gen var .pytest_cache .mypy_cache .ruff_cache
