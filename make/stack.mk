# Orchestration: the local stack (make up / make down), executor packaging, browser for the UI test.
# Included by the Makefile before its rules; see docs/orchestration.md.

STACK_DIR ?= .stack
# Leave one out by listing the others, e.g. no Kafka: make up STACK_SERVICES=spark-master,spark-worker,mlflow,redis,airflow
STACK_SERVICES ?= spark-master,spark-worker,mlflow,kafka,redis,airflow
# LAKE=s3: the lakehouse, landing zone and MLflow artifacts on a local S3 server (moto) started first
LAKE ?= local
PACK_ENV_DIR ?= build/pack-env

.PHONY: up down up-env stack-status pack-pyfiles pack-env browser-deps redis-deps

## up: Spark standalone master + worker, MLflow server, Kafka broker (:9092), Redis (:6379), Airflow (standalone) on 127.0.0.1 [LAKE=s3]
up: check-java venv jars
	CLICKML_STACK_DIR=$(STACK_DIR) $(PY) -m pipelines.orchestration.stack up --services $(STACK_SERVICES) --lake $(LAKE)

## up-env: the environment that points clickml at the stack: eval "$$(make -s up-env LAKE=s3)"
up-env:
	@CLICKML_STACK_DIR=$(STACK_DIR) $(PY) -m pipelines.orchestration.stack env --lake $(LAKE)

## down: stop exactly what `make up` started (pid files under $(STACK_DIR)/pids, Kafka's under $(STACK_DIR)/kafka/pids)
down:
	@if [ -x $(PY) ]; then CLICKML_STACK_DIR=$(STACK_DIR) $(PY) -m pipelines.orchestration.stack down; \
	else echo "nothing to stop: $(PY) does not exist"; fi

stack-status: venv
	CLICKML_STACK_DIR=$(STACK_DIR) $(PY) -m pipelines.orchestration.stack status

## pack-pyfiles: dist/clickml-pipelines.zip for `spark-submit --py-files` (executors that have the dependencies)
pack-pyfiles: venv
	$(PY) -m pipelines.orchestration.packaging pyfiles dist/clickml-pipelines.zip

## pack-env: dist/clickml-env.tar.gz, a relocatable virtual environment with clickml and its
## dependencies (no dev/airflow/dl extras) for `spark-submit --archives dist/clickml-env.tar.gz#environment`
pack-env:
	rm -rf $(PACK_ENV_DIR) && $(PYTHON) -m venv --copies $(PACK_ENV_DIR)
	$(PACK_ENV_DIR)/bin/pip install --quiet --upgrade pip
	$(PACK_ENV_DIR)/bin/pip install --quiet -c constraints.txt . venv-pack==0.2.0
	mkdir -p dist && rm -f dist/clickml-env.tar.gz
	$(PACK_ENV_DIR)/bin/venv-pack --prefix $(PACK_ENV_DIR) --output dist/clickml-env.tar.gz
	chmod 644 dist/clickml-env.tar.gz
	@echo "spark-submit --archives dist/clickml-env.tar.gz#environment --conf spark.pyspark.python=./environment/bin/python jobs/<job>.py ..."
	@echo "The archive holds the packages, not the interpreter: executors need Python $$(sed -n 's/^version = //p' $(PACK_ENV_DIR)/pyvenv.cfg) at $$(sed -n 's/^home = //p' $(PACK_ENV_DIR)/pyvenv.cfg) (PYTHON=... picks the one to build with)."

## browser-deps: headless Chromium + chromedriver for the Airflow UI test (Debian, as root; skipped otherwise)
browser-deps:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium and chromium-driver for the browser test (apt-get)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	    || echo "WARNING: could not install chromium; the browser test will be skipped"; \
	else echo "NOTE: chromium/chromedriver missing and not root with apt-get: the browser test will be skipped"; fi

TEST_PREREQS += browser-deps

## redis-deps: Debian's redis-server for `make up` and the serving tests (as root; skipped otherwise).
## A server the package's scripts start right after installing is stopped: tests and `make up`
## start their own on 127.0.0.1.
redis-deps:
	@if command -v redis-server >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing redis-server for the serving tests and make up (apt-get)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null \
	    && (service redis-server stop >/dev/null 2>&1 || true)) \
	    || echo "WARNING: could not install redis-server; the serving tests will be skipped"; \
	else echo "NOTE: redis-server missing and not root with apt-get: the serving tests will be skipped"; fi

TEST_PREREQS += redis-deps
