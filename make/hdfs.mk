# A real single-node HDFS (NameNode + DataNode JVMs from jvm/pom.xml's hdfs profile) on 127.0.0.1,
# for running the pipeline with hdfs:// roots. Included by the Makefile; see docs/storage.md.

HDFS_DIR ?= .stack/hdfs
HDFS_PORT ?= 9000
HDFS_HTTP_PORT ?= 9870

.PHONY: hdfs-up hdfs-down hdfs-status

## hdfs-up: NameNode (hdfs://127.0.0.1:$(HDFS_PORT)) + DataNode, state and logs under $(HDFS_DIR); prints the lake.root to use
hdfs-up: check-java venv jars
	$(PY) -m pipelines.orchestration.hdfs up --dir $(HDFS_DIR) --port $(HDFS_PORT) --http-port $(HDFS_HTTP_PORT)

## hdfs-down: stop exactly what `make hdfs-up` started (pid files under $(HDFS_DIR)/pids); the data stays
hdfs-down:
	@if [ -x $(PY) ]; then $(PY) -m pipelines.orchestration.hdfs down --dir $(HDFS_DIR); \
	else echo "nothing to stop: $(PY) does not exist"; fi

hdfs-status:
	@$(PY) -m pipelines.orchestration.hdfs status --dir $(HDFS_DIR)
