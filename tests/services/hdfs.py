"""A real single-node HDFS for tests: `pipelines.orchestration.hdfs.LocalHdfs` (NameNode + DataNode JVMs).

    from tests.services.hdfs import hdfs  # noqa: F401  (registers the fixture in the module)

    def test_x(spark, hdfs, tmp_path):
        use_hdfs(spark, hdfs)                                 # quick-failing client settings
        config = make_config(tmp_path, *hdfs_roots(hdfs, "t1"))   # lake.root / landing.root on hdfs://

One HDFS per test session (`hdfs`), in a tmp folder; each test takes its own sub-folder of the
namespace. Skipped, with the reason printed, only when Java is missing; anything else that keeps
HDFS from starting (jars not resolved, a daemon dying, a timeout) fails the test with the logs.
"""

from __future__ import annotations

import itertools
import shutil

import pytest

from pipelines.orchestration.hdfs import HdfsError, LocalHdfs

_names = itertools.count()


@pytest.fixture(scope="session")
def hdfs(tmp_path_factory):
    """A started LocalHdfs for the whole test session; stopped (both JVMs) at its end."""
    if not shutil.which("java") and not _java_home_java():
        reason = "HDFS needs Java 17+ (no `java` on PATH, no $JAVA_HOME/bin/java)"
        print(f"SKIP hdfs: {reason}")
        pytest.skip(reason)
    service = LocalHdfs(tmp_path_factory.mktemp("hdfs"))
    try:
        service.start()
    except HdfsError as exc:
        pytest.fail(f"HDFS did not start: {exc}", pytrace=False)
    try:
        yield service
    finally:
        service.stop()


def hdfs_roots(service: LocalHdfs, name: str | None = None) -> list[str]:
    """Config overrides putting lake.root and landing.root in a fresh folder of `service`."""
    base = f"{service.uri}/tests/{name or 'run'}-{next(_names)}"
    return [f"lake.root={base}/lakehouse", f"landing.root={base}/landing"]


def use_hdfs(spark, service: LocalHdfs, retries: int = 1) -> None:
    """Put the quick-failing client settings of `service` on a running session.

    Both spellings are set: the plain key in the session conf (copied into every Hadoop conf that
    a query builds: file sources, Delta) and on the SparkContext's Hadoop configuration (used by
    FileSystem calls made through the JVM). They take effect for a FileSystem instance created
    afterwards; one HDFS per session on its own port means the first access comes after this.
    """
    hadoop_conf = spark.sparkContext._jsc.hadoopConfiguration()
    for key, value in service.client_settings(retries).items():
        spark.conf.set(key, value)
        hadoop_conf.set(key, value)


def _java_home_java() -> bool:
    import os
    from pathlib import Path

    home = os.environ.get("JAVA_HOME")
    return bool(home and (Path(home) / "bin" / "java").exists())
