# A real single-node Kafka broker (KRaft: broker + controller in one JVM, from jvm/pom.xml's kafka
# profile) on 127.0.0.1, for Structured Streaming from Kafka in development. Included by the Makefile.

KAFKA_DIR ?= .stack/kafka
KAFKA_PORT ?= 9092
KAFKA_CONTROLLER_PORT ?= 9093

.PHONY: kafka-up kafka-down kafka-status

## kafka-up: a broker at 127.0.0.1:$(KAFKA_PORT) (controller :$(KAFKA_CONTROLLER_PORT)), data and logs under $(KAFKA_DIR)
kafka-up: check-java venv jars
	$(PY) -m pipelines.orchestration.kafka up --dir $(KAFKA_DIR) --port $(KAFKA_PORT) --controller-port $(KAFKA_CONTROLLER_PORT)

## kafka-down: stop exactly what `make kafka-up` started (pid file under $(KAFKA_DIR)/pids); the topics stay
kafka-down:
	@if [ -x $(PY) ]; then $(PY) -m pipelines.orchestration.kafka down --dir $(KAFKA_DIR); \
	else echo "nothing to stop: $(PY) does not exist"; fi

kafka-status:
	@$(PY) -m pipelines.orchestration.kafka status --dir $(KAFKA_DIR)
