# JVM jars (jvm/pom.xml): resolved once with Maven into ~/.cache/clickml/jars/<pom hash>/<profile>/
# and verified; every SparkSession puts the spark profile on spark.jars. See docs/operations.md, "Jars on a cluster".
.PHONY: jars check-mvn

check-mvn:
	@if [ -z "$$CLICKML_JARS_DIR" ]; then command -v mvn >/dev/null 2>&1 || { \
	  echo "ERROR: Maven (mvn) not found; it resolves the JVM jars of jvm/pom.xml once." >&2; \
	  echo "  Debian/Ubuntu: sudo apt-get install -y maven   macOS: brew install maven" >&2; \
	  echo "  or set CLICKML_JARS_DIR to a folder that already holds the spark/, hdfs/ and kafka/ jars." >&2; \
	  exit 1; }; fi

## jars: resolve jvm/pom.xml (Delta, hadoop-aws, the Kafka source; HDFS and a Kafka broker for tests) into the cache; a no-op when cached
jars: check-java check-mvn venv
	@if [ -n "$$CLICKML_JARS_DIR" ]; then echo "jars: using CLICKML_JARS_DIR=$$CLICKML_JARS_DIR"; \
	else $(PY) -m pipelines.spark.jars resolve; fi

TEST_PREREQS += jars
DEMO_PREREQS += jars
