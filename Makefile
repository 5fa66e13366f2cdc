# clickml: the two commands are `make demo` and `make test`; both set up .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
EXTRAS ?= dev,airflow,dl,kafka,serve
PROFILE ?= local
STAMP := $(VENV)/.installed-$(EXTRAS)

.DEFAULT_GOAL := help
TEST_PREREQS :=
DEMO_PREREQS :=
# Feature fragments (make/*.mk): each adds its targets and may append to TEST_PREREQS / DEMO_PREREQS.
# They are read here, before the rules below expand those lists.
include $(wildcard make/*.mk)

.PHONY: help venv demo test test-fast test-storage test-unit clean clean-lake check-java constraints

help:
	@echo "make demo   - create $(VENV), install clickml, run the pipeline on generated data"
	@echo "make test   - create $(VENV), install clickml, run the whole test suite"
	@echo "make test-fast - the suite without the end-to-end runs (marker e2e) and slow tests: a developer's signal"
	@echo "make clean  - remove $(VENV) and local lakehouse/landing output"
	@echo "make horovod - build Horovod $(HOROVOD_VERSION) for the venv's torch (cached in $(CLICKML_WHEEL_CACHE)); make test runs it"
	@echo "make up     - local stack on 127.0.0.1: Spark master+worker, MLflow, Kafka, Redis, Airflow with the DAGs; make down stops it"

check-java:
	@command -v java >/dev/null 2>&1 || { \
	  echo "ERROR: Java not found. Spark 4 needs Java 17 or 21." >&2; \
	  echo "  Debian/Ubuntu: sudo apt-get update && sudo apt-get install -y openjdk-17-jre-headless" >&2; \
	  echo "  macOS:         brew install openjdk@17" >&2; \
	  echo "  or set JAVA_HOME to an existing JDK 17+ and put \$$JAVA_HOME/bin on PATH." >&2; \
	  exit 1; }
	@major=$$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1); \
	if [ -z "$$major" ] || [ "$$major" -lt 17 ]; then \
	  echo "ERROR: Java $$major found; Spark 4 needs Java 17 or 21." >&2; \
	  echo "  Debian/Ubuntu: sudo apt-get install -y openjdk-17-jre-headless, then point JAVA_HOME at it." >&2; \
	  exit 1; fi

$(STAMP): setup.py constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 10) else 1)' || { \
	  echo "ERROR: $(PYTHON) is older than Python 3.10; set PYTHON=python3.11" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

# The demo's data: 28 days, feature windows of 1, 7 and 14 days and 14 days of history before the
# first cutoff, so every train, validation and test example has full windows. With base.yaml's 14
# days and 30-day windows, later cutoffs had longer histories than earlier ones, and calibrators
# fitted on the validation cutoffs over-predicted the test period (docs/training.md).
DEMO_SETTINGS ?= --set generator.days=28 --set 'features.windows_days=[1, 7, 14]' \
	--set training_sets.propensity.lookback_days=14 --set training_sets.propensity.min_history_days=14

demo: check-java venv $(DEMO_PREREQS)
	$(VENV)/bin/clickml --profile $(PROFILE) $(DEMO_SETTINGS) demo

# TEST_WORKERS=2 runs two pytest-xdist workers (--dist loadfile: a module on one worker; the
# longest modules first, tests/conftest.py). Measured on a fresh clone (benchmarks/README.md): green,
# but 3130 s of pytest against 3224 s in one process. The suite is CPU-bound on 2 cores (load 7-8
# with two workers; each test's Spark JVMs and servers use both cores), so the tests ran about
# twice as long side by side. The default stays one process, the configuration CI has run longest.
TEST_WORKERS ?= 0
PYTEST := $(VENV)/bin/python -m pytest $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)

test: check-java venv $(TEST_PREREQS)
	$(PYTEST)

# Everything but the end-to-end runs (Airflow DAG runs, the stack and its UI, the demo, the
# pipeline on S3 / HDFS) and the tests marked slow; `make test` (and CI) still runs them all.
test-fast: check-java venv $(TEST_PREREQS)
	$(PYTEST) -m "not e2e and not slow"

# Only the whole pipeline on S3 (moto), HDFS (NameNode + DataNode) and the standalone stack with
# the lakehouse on S3 (also part of `make test`).
test-storage: check-java venv $(TEST_PREREQS)
	$(PYTEST) -m storage_e2e

test-unit: check-java venv
	$(VENV)/bin/python -m pytest tests/unit

# Re-resolve the full dependency set in a scratch venv and freeze it (maintainers only).
constraints:
	rm -rf /tmp/clickml-resolve && $(PYTHON) -m venv /tmp/clickml-resolve
	/tmp/clickml-resolve/bin/pip install --quiet --upgrade pip
	/tmp/clickml-resolve/bin/pip install ".[airflow,dl,dev,kafka]" "pyspark==4.1.3" "pyspark-client==4.1.3"
	@echo "Review and copy: /tmp/clickml-resolve/bin/pip freeze --exclude clickml"

clean-lake:
	rm -rf lakehouse landing spark-warehouse

clean: clean-lake
	rm -rf $(VENV) *.egg-info .pytest_cache
