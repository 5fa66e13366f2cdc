"""The online store: per-user features and top-k recommendations in Redis, read by the model server.

Keys (`serving.key_prefix`, default `clickml`), all with the TTL `serving.feature_ttl_hours`
but the fallback counters:

- `<prefix>:<job>:features:<user_id>`: a hash, one field per feature column (the columns batch
  scoring gives the model) plus `as_of_date`;
- `<prefix>:<job>:recs:<model_version>:<user_id>`: a hash with `as_of_date`, `model_version` and
  `items`, a JSON list of `[product_id, score]` in rank order: one set per materialized version,
  so an experiment serves each variant's own top-k;
- `<prefix>:<job>:meta`: a hash written last by `clickml materialize`: `kind` (features or
  recommendations), `as_of_date`, `materialized_at`, `users`, `model_version` (recommendations:
  the version served without an experiment), `schema` (JSON: column -> type) and `defaults`
  (JSON: column -> stored value: the median of a numeric column and the mode of another over the
  materialized users, zero where it is all null);
- `<prefix>:<job>:meta:<model_version>`: recommendations only, the same hash for each
  materialized version (`clickml materialize JOB --experiment E` writes these alone);
- `<prefix>:<job>:fallbacks`: counters (HINCRBY, no TTL) `missing_user`, `missing_feature`,
  `missing_recs`, reported by the server's /metrics.

Values are text: numbers as Python's round-trip `repr`, booleans `true`/`false`, dates ISO, a
null `\\N`; the `schema` in the meta key turns them back into typed values.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from pipelines.config.serving import ServingConfig

log = logging.getLogger(__name__)

AS_OF_FIELD = "as_of_date"
NULL = "\\N"
"""How a null value is stored (a hash field cannot hold None)."""
FALLBACK_FIELDS = ("missing_user", "missing_feature", "missing_recs")
META_CACHE_SECONDS = 5.0
"""How long an `OnlineStore` keeps a job's parsed meta key before reading it again."""
SOCKET_TIMEOUT_S = 2.0


class OnlineStoreError(RuntimeError):
    """Redis cannot be reached or holds something unexpected; the message names the URL and key."""


# -- key layout ------------------------------------------------------------------------------

def feature_key(prefix: str, job: str, user_id: str) -> str:
    return f"{prefix}:{job}:features:{user_id}"


def recs_key(prefix: str, job: str, model_version: str, user_id: str) -> str:
    return f"{prefix}:{job}:recs:{model_version}:{user_id}"


def meta_key(prefix: str, job: str, model_version: str | None = None) -> str:
    """The job's meta hash, or with `model_version` that of one materialized recommender version."""
    return f"{prefix}:{job}:meta" + (f":{model_version}" if model_version is not None else "")


def fallbacks_key(prefix: str, job: str) -> str:
    return f"{prefix}:{job}:fallbacks"


def masked_url(url: str) -> str:
    """The Redis URL without its password, for logs and errors."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user + ':' if user else ''}***@{host}"
    return url


# -- values ----------------------------------------------------------------------------------

def type_kind(spark_type: str) -> str:
    """`float`, `int`, `bool`, `date`, `timestamp` or `str` for a Spark simple type string."""
    if spark_type in ("double", "float") or spark_type.startswith("decimal"):
        return "float"
    if spark_type in ("int", "bigint", "smallint", "tinyint", "integer", "long", "short", "byte"):
        return "int"
    if spark_type == "boolean":
        return "bool"
    if spark_type in ("date", "timestamp", "timestamp_ntz"):
        return "date" if spark_type == "date" else "timestamp"
    return "str"


def encode(value: Any) -> str:
    """A value as stored in a hash field (`\\N` for null; floats round-trip exactly)."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def decode(text: str, kind: str) -> Any:
    """A stored field back as a typed value (`kind` from `type_kind`)."""
    if text == NULL:
        return None
    if kind == "float":
        return float(text)
    if kind == "int":
        return int(text)
    if kind == "bool":
        return text == "true"
    if kind == "date":
        return dt.date.fromisoformat(text)
    if kind == "timestamp":
        return dt.datetime.fromisoformat(text)
    return text


def zero_of(kind: str) -> Any:
    """The default of a column that has no median or mode (all null)."""
    return {"float": 0.0, "int": 0, "bool": False, "str": ""}.get(kind)


# -- writing (runs in Spark tasks, see pipelines/serve/materialize.py) -------------------------

def connect(url: str, **options):
    """A redis-py client on `url` with bounded timeouts (strings decoded)."""
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - the serve extra
        raise OnlineStoreError("redis-py is not installed: pip install -e '.[serve]'") from exc
    options.setdefault("socket_timeout", SOCKET_TIMEOUT_S)
    options.setdefault("socket_connect_timeout", SOCKET_TIMEOUT_S)
    return redis.Redis.from_url(url, decode_responses=True, **options)


def write_features(rows: Iterable, *, url: str, prefix: str, job: str, as_of: str, columns: list[str],
                   ttl_seconds: int, batch_size: int, counter=None, client=None) -> int:
    """Write each row (`user_id` and `columns`) as a features hash: DEL, HSET, EXPIRE per user, in
    MULTI/EXEC batches of `batch_size` users (a reader never sees a half-written user). Returns
    the number of users written; adds it to `counter` (a Spark accumulator) when given."""
    def commands(pipe, row) -> None:
        key = feature_key(prefix, job, str(row["user_id"]))
        mapping = {column: encode(row[column]) for column in columns}
        mapping[AS_OF_FIELD] = as_of
        pipe.delete(key)
        pipe.hset(key, mapping=mapping)
        pipe.expire(key, ttl_seconds)

    return _write_batches(rows, commands, url, batch_size, counter, client)


def write_recommendations(rows: Iterable, *, url: str, prefix: str, job: str, as_of: str, model_version: str,
                          ttl_seconds: int, batch_size: int, counter=None, client=None) -> int:
    """Write each row (`user_id`, `items`: [(product_id, score)] in rank order) as a recs hash."""
    def commands(pipe, row) -> None:
        key = recs_key(prefix, job, model_version, str(row["user_id"]))
        items = [[str(item[0]), float(item[1])] for item in row["items"]]
        pipe.delete(key)
        pipe.hset(key, mapping={AS_OF_FIELD: as_of, "model_version": model_version, "items": json.dumps(items)})
        pipe.expire(key, ttl_seconds)

    return _write_batches(rows, commands, url, batch_size, counter, client)


def _write_batches(rows: Iterable, commands, url: str, batch_size: int, counter, client) -> int:
    own = client is None
    client = connect(url) if own else client
    written = pending = 0
    try:
        pipe = client.pipeline(transaction=True)
        for row in rows:
            commands(pipe, row)
            pending += 1
            if pending >= batch_size:
                pipe.execute()
                written, pending = written + pending, 0
        if pending:
            pipe.execute()
            written += pending
    finally:
        if own:
            client.close()
    if counter is not None:
        counter.add(written)
    return written


def write_meta(client, prefix: str, job: str, meta: Mapping[str, Any], ttl_seconds: int,
               model_version: str | None = None) -> None:
    """Replace the job's meta hash (or that of `model_version`; JSON for structured values) with the TTL of its keys."""
    key = meta_key(prefix, job, model_version)
    mapping = {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}
    pipe = client.pipeline(transaction=True)
    pipe.delete(key)
    pipe.hset(key, mapping=mapping)
    pipe.expire(key, ttl_seconds)
    pipe.execute()


# -- reading (the model server) --------------------------------------------------------------

class OnlineStore:
    """Reads what `clickml materialize` wrote, with defaults for what is missing (counted).

        store = OnlineStore(config.serving)
        features, as_of = store.get_user_features("propensity", "u42")
    """

    def __init__(self, serving: ServingConfig, client=None, meta_cache_seconds: float = META_CACHE_SECONDS):
        self.serving = serving
        self.prefix = serving.key_prefix
        self.client = client if client is not None else connect(serving.redis_url)
        self.meta_cache_seconds = meta_cache_seconds
        self._meta: dict[tuple[str, str | None], tuple[float, dict[str, Any] | None]] = {}

    def ping(self) -> bool:
        """True when Redis answers (for /health)."""
        import redis

        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def meta(self, job: str, fresh: bool = False, model_version: str | None = None) -> dict[str, Any] | None:
        """The job's parsed meta key (`schema` and `defaults` as dicts), or that of one materialized
        recommender version; None when never materialized (or expired); cached for `meta_cache_seconds`."""
        now = time.monotonic()
        cached = self._meta.get((job, model_version))
        if not fresh and cached is not None and now - cached[0] < self.meta_cache_seconds:
            return cached[1]
        key = meta_key(self.prefix, job, model_version)
        raw = self._call(lambda: self.client.hgetall(key), key)
        meta = parse_meta(raw) if raw else None
        self._meta[(job, model_version)] = (now, meta)
        return meta

    def materialized_as_of(self, job: str) -> dt.date | None:
        """The as-of date the store holds for `job` (None: nothing materialized)."""
        meta = self.meta(job, fresh=True)
        return meta["as_of_date"] if meta else None

    def defaults(self, job: str) -> dict[str, Any]:
        """The default of every feature column ({} when nothing is materialized)."""
        meta = self.meta(job)
        return dict(meta["defaults"]) if meta else {}

    def get_user_features(self, job: str, user_id: str) -> tuple[dict[str, Any] | None, dt.date | None]:
        """(features, as-of date) of a user. An unknown user gets the defaults and as-of None
        (`missing_user` counted); a column missing from the user's hash gets its default
        (`missing_feature` counted once per request). (None, None) when the job was never
        materialized (counted as a missing user)."""
        key = feature_key(self.prefix, job, str(user_id))
        raw = self._call(lambda: self.client.hgetall(key), key)
        meta = self.meta(job)
        if not raw:
            self._count(job, "missing_user")
            return (dict(meta["defaults"]) if meta else None), None
        as_of = dt.date.fromisoformat(raw.pop(AS_OF_FIELD)) if AS_OF_FIELD in raw else None
        schema = meta["schema"] if meta else {}
        features = {name: decode(text, schema.get(name, "str")) for name, text in raw.items()}
        missing = [name for name in schema if name not in features]
        if missing:
            for name in missing:
                features[name] = meta["defaults"].get(name)
            self._count(job, "missing_feature")
        return features, as_of

    def get_recommendations(self, job: str, user_id: str, model_version: str | None = None) -> list[tuple[str, float]]:
        """The user's top-k (product_id, score) in rank order by `model_version` (default: the version
        the job's meta names); [] for an unknown user or a version never materialized (`missing_recs`)."""
        if model_version is None:
            meta = self.meta(job)
            model_version = meta.get("model_version") if meta else None
            if not model_version:
                self._count(job, "missing_recs")
                return []
        key = recs_key(self.prefix, job, str(model_version), str(user_id))
        items = self._call(lambda: self.client.hget(key, "items"), key)
        if not items:
            self._count(job, "missing_recs")
            return []
        return [(str(product), float(score)) for product, score in json.loads(items)]

    def fallbacks(self, job: str) -> dict[str, int]:
        """The fallback counters of `job` (every field, 0 when never counted)."""
        key = fallbacks_key(self.prefix, job)
        raw = self._call(lambda: self.client.hgetall(key), key)
        return {name: int(raw.get(name, 0)) for name in FALLBACK_FIELDS}

    def _count(self, job: str, field: str) -> None:
        import redis

        try:
            self.client.hincrby(fallbacks_key(self.prefix, job), field, 1)
        except redis.RedisError as exc:  # a lost count must not fail the request it is about
            log.warning("cannot count %s for %s in %s: %s", field, job, masked_url(self.serving.redis_url), exc)

    def _call(self, command, key: str):
        import redis

        try:
            return command()
        except redis.RedisError as exc:
            raise OnlineStoreError(f"Redis at {masked_url(self.serving.redis_url)}: reading {key} failed: {exc}") from exc


def parse_meta(raw: Mapping[str, str]) -> dict[str, Any]:
    """A meta hash as written by `write_meta`, typed: dates, ints, and the JSON values decoded."""
    meta: dict[str, Any] = dict(raw)
    meta["as_of_date"] = dt.date.fromisoformat(raw["as_of_date"]) if raw.get("as_of_date") else None
    meta["users"] = int(raw.get("users", 0))
    meta["schema"] = schema = json.loads(raw.get("schema", "{}"))
    meta["defaults"] = {name: decode(text, schema.get(name, "str")) for name, text in json.loads(raw.get("defaults", "{}")).items()}
    return meta
