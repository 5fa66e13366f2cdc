"""Pre-flight check of the storage roots: can this session reach `lake.root`, `landing.root`, ...?

    from pipelines.spark.storage import check_roots
    check_roots(config, spark)        # raises StorageError("s3a://bucket/lake", "bucket ... does not exist")

Without it, a wrong key pair or a missing bucket surfaces deep inside a Spark or Delta job as a
Java stack trace (or, for some calls, after S3A's retries). The check asks Hadoop's FileSystem of
each remote root (s3a://, hdfs://, ...; local paths are skipped) for the root's status through the
JVM gateway, with the session's Hadoop configuration plus the config's own `lake.storage` settings,
retries off and a fresh (uncached) FileSystem, and turns the answer into one line naming the URI,
what is wrong and which settings to look at. Nothing is written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlparse

from pipelines.config import ClickmlConfig

log = logging.getLogger(__name__)

LOCAL_SCHEMES = ("", "file")
# Hadoop's spelling of S3 is s3a; `s3://` and `s3n://` roots are S3 too (see pipelines/lake/location.py).
S3_SCHEMES = ("s3", "s3a", "s3n")
# Fail fast: one attempt, no S3A retry loop, short connection timeouts (the probe, not the jobs).
_PROBE_SETTINGS = {
    "fs.s3a.attempts.maximum": "1",
    "fs.s3a.retry.limit": "0",
    "fs.s3a.retry.throttle.limit": "0",
    "fs.s3a.connection.establish.timeout": "15000",  # S3A raises anything lower to 15 s (with a warning)
    "fs.s3a.connection.timeout": "10000",
    "ipc.client.connect.max.retries": "0",
    "ipc.client.connect.max.retries.on.timeouts": "0",
}


class StorageError(RuntimeError):
    """A storage root cannot be used; `uri` is the root, `reason` says why (and what to check)."""

    def __init__(self, uri: str, reason: str):
        self.uri = uri
        self.reason = reason
        super().__init__(f"{uri}: {reason}")


@dataclass(frozen=True)
class Root:
    setting: str
    """The config key the URI comes from, e.g. `lake.root`."""
    uri: str
    """As Spark/Hadoop spell it (`s3://` becomes `s3a://`)."""


def storage_roots(config: ClickmlConfig) -> list[Root]:
    """The remote roots the config points at (local paths are not checked), each once."""
    candidates = [
        ("lake.root", config.lake.root),
        ("landing.root", config.landing.root),
        ("ingest.checkpoint_root", config.ingest.checkpoint_root),
        ("validation.results_root", config.validation.results_root),
    ]
    roots: list[Root] = []
    seen: set[str] = set()
    for setting, uri in candidates:
        if not uri or urlparse(uri).scheme.lower() in LOCAL_SCHEMES or len(urlparse(uri).scheme) == 1:
            continue  # local path (a one-letter scheme is a Windows drive)
        uri = hadoop_uri(uri)
        if uri not in seen:
            seen.add(uri)
            roots.append(Root(setting, uri))
    return roots


def hadoop_uri(uri: str) -> str:
    """`s3://b/p` and `s3n://b/p` as `s3a://b/p` (the one S3 FileSystem on the classpath)."""
    scheme, sep, rest = uri.partition("://")
    return f"s3a://{rest}" if sep and scheme.lower() in S3_SCHEMES else uri


def check_roots(config: ClickmlConfig, spark, roots: list[Root] | None = None) -> list[Root]:
    """Check every remote root of `config` (or `roots`); raise StorageError for the first that
    cannot be used. Returns the roots checked."""
    roots = storage_roots(config) if roots is None else roots
    for root in roots:
        check_root(spark, root.uri, config=config, setting=root.setting)
    return roots


def check_root(spark, uri: str, config: ClickmlConfig | None = None, setting: str | None = None) -> None:
    """Ask Hadoop's FileSystem for `uri`'s status; raise StorageError naming `uri` when the
    store cannot be reached, the bucket does not exist, or the credentials are refused.
    A root that does not exist yet (in an existing bucket / on a reachable cluster) is fine."""
    from py4j.protocol import Py4JError, Py4JJavaError

    uri = hadoop_uri(uri)
    scheme = urlparse(uri).scheme.lower()
    jvm = spark.sparkContext._jvm
    conf = spark._jsparkSession.sessionState().newHadoopConf()
    if config is not None:
        from pipelines.spark.session import _s3a_settings

        for key, value in _s3a_settings(config).items():
            conf.set(key[len("spark.hadoop."):], value)
    for key, value in _PROBE_SETTINGS.items():
        conf.set(key, value)
    conf.set(f"fs.{scheme}.impl.disable.cache", "true")  # a fresh client with exactly these settings
    path = jvm.org.apache.hadoop.fs.Path(uri)
    fs = None
    try:
        fs = path.getFileSystem(conf)
        fs.exists(path)  # False (not created yet) is fine; errors are not
    except Py4JJavaError as exc:
        raise StorageError(uri, _reason(exc.java_exception, uri, conf, setting)) from None
    except Py4JError as exc:  # the gateway itself failed
        raise StorageError(uri, f"cannot check through the JVM gateway: {exc}") from None
    finally:
        if fs is not None:
            try:
                fs.close()
            except Exception:  # closing a probe client must not hide the answer
                log.debug("closing the probe FileSystem of %s failed", uri, exc_info=True)
    log.info("storage: %s (%s) is reachable", uri, setting or "root")


def _chain(java_exception) -> list[tuple[str, str]]:
    """(class name, message) of the exception and its causes."""
    chain = []
    current, seen = java_exception, 0
    while current is not None and seen < 10:
        chain.append((current.getClass().getName(), str(current.getMessage() or "")))
        current, seen = current.getCause(), seen + 1
    return chain


def _reason(java_exception, uri: str, conf, setting: str | None) -> str:
    chain = _chain(java_exception)
    names = [name for name, _ in chain]
    messages = " ".join(message for _, message in chain)
    where = f" ({setting})" if setting else ""
    bucket = urlparse(uri).netloc
    if any(n.endswith("UnsupportedFileSystemException") for n in names) or "No FileSystem for scheme" in messages:
        scheme = urlparse(uri).scheme
        hint = " (hadoop-aws and the AWS SDK bundle: run `make jars`)" if scheme == "s3a" else ""
        return f"no Hadoop FileSystem for scheme {scheme!r} on the classpath{hint}{where}"
    if any(n.endswith("ClassNotFoundException") for n in names):
        return f"a FileSystem class is missing from the classpath ({_first_line(messages)}): run `make jars`{where}"
    if urlparse(uri).scheme == "s3a":
        endpoint = _s3a_option(conf, bucket, "endpoint") or "AWS (no fs.s3a.endpoint)"
        if any(n.endswith("UnknownStoreException") for n in names) or "NoSuchBucket" in messages:
            return f"bucket {bucket!r} does not exist at {endpoint}{where}: create it, or fix the root"
        if any(n.endswith("AccessDeniedException") for n in names) or _status(messages) in (401, 403):
            return (
                f"access denied by {endpoint}{where}: the credentials ({_credentials_source(conf, bucket)}) "
                "are wrong or not allowed to list this bucket"
            )
        if _status(messages) == 400 or any(n.endswith("AWSBadRequestException") for n in names):
            return (
                f"bad request (HTTP 400) from {endpoint}{where}: often the wrong region "
                f"(lake.storage.region = fs.s3a.endpoint.region, now {_s3a_option(conf, bucket, 'endpoint.region')!r}) "
                f"or a malformed endpoint: {_first_line(messages)}"
            )
        if _connection_failure(names, messages):
            return f"cannot connect to {endpoint}{where}, check lake.storage.endpoint: {_root_cause(chain)}"
    elif _connection_failure(names, messages):
        return f"cannot connect{where}: {_root_cause(chain)}"
    if any(n.endswith("AccessControlException") or n.endswith("AccessDeniedException") for n in names):
        return f"permission denied{where}: {_first_line(messages)}"
    return f"cannot be used{where}: {names[0].rsplit('.', 1)[-1]}: {_first_line(chain[0][1])}"


def _s3a_option(conf, bucket: str, option: str) -> str | None:
    """An S3A option as S3A resolves it: the per-bucket `fs.s3a.bucket.<b>.<option>` first."""
    return conf.get(f"fs.s3a.bucket.{bucket}.{option}") or conf.get(f"fs.s3a.{option}")


def _credentials_source(conf, bucket: str) -> str:
    if _s3a_option(conf, bucket, "access.key"):
        return "the configured key pair: lake.storage.access_key_id / secret_access_key, i.e. fs.s3a.access.key / secret.key"
    return "none configured: the AWS default chain, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, profile or instance role"


def _status(messages: str) -> int | None:
    import re

    match = re.search(r"Status Code: (\d{3})", messages)
    return int(match.group(1)) if match else None


def _connection_failure(names: list[str], messages: str) -> bool:
    markers = ("ConnectException", "UnknownHostException", "NoRouteToHostException", "SocketTimeoutException",
               "ConnectTimeoutException", "AWSClientIOException", "SdkClientException")
    return any(n.endswith(m) for n in names for m in markers) or "Unable to execute HTTP request" in messages


def _root_cause(chain: list[tuple[str, str]]) -> str:
    """The innermost cause with a message (`Connection refused`), with its class's short name."""
    for name, message in reversed(chain):
        if message.strip():
            return f"{name.rsplit('.', 1)[-1]}: {_first_line(message)}"
    return chain[0][0].rsplit(".", 1)[-1]


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= 400 else line[:397] + "..."
