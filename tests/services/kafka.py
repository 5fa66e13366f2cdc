"""A real single-node Kafka broker for tests: `pipelines.orchestration.kafka.LocalKafka` (KRaft, one JVM).

    # registered once for the session in tests/conftest.py

    def test_x(kafka):
        kafka.create_topic(unique_topic("clicks"), partitions=3)
        ... .option("kafka.bootstrap.servers", kafka.bootstrap) ...

One broker per test session (`kafka`), in a tmp folder; each test creates its own topics
(`unique_topic`). Skipped, with the reason printed, only when Java is missing; anything else that
keeps the broker from starting (jars not resolved, the JVM dying, a timeout) fails the test with
the tail of its log.
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import pytest

from pipelines.orchestration.kafka import KafkaError, LocalKafka

_names = itertools.count()


@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    """A started LocalKafka for the whole test session; stopped at its end."""
    if not shutil.which("java") and not _java_home_java():
        reason = "Kafka needs Java 17+ (no `java` on PATH, no $JAVA_HOME/bin/java)"
        print(f"SKIP kafka: {reason}")
        pytest.skip(reason)
    service = LocalKafka(tmp_path_factory.mktemp("kafka"))
    try:
        service.start()
    except KafkaError as exc:
        pytest.fail(f"Kafka did not start: {exc}", pytrace=False)
    try:
        yield service
    finally:
        service.stop()


def unique_topic(name: str = "topic") -> str:
    """A topic name no other test of this session uses."""
    return f"{name}-{next(_names)}"


def _java_home_java() -> bool:
    home = os.environ.get("JAVA_HOME")
    return bool(home and (Path(home) / "bin" / "java").exists())
