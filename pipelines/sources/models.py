"""A source file describes one site's export: format, column mapping, timestamps, event types.

Adding a third site's export needs only a new `conf/sources/<name>.yaml`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Mapping

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from pipelines.config.base import Section
from pipelines.config.loader import ConfigError, format_validation_error

# The canonical event schema of bronze.events (besides ingest metadata).
CANONICAL_FIELDS: tuple[str, ...] = (
    "event_id", "event_time", "event_type", "user_id", "session_id", "product_id", "category",
    "brand", "price", "currency", "device", "referrer", "country",
    # An exposure (the model server's decision, `event_type: exposure`): which experiment and
    # variant served the user, with which model version; null on every other event.
    "experiment_id", "variant", "model_version",
)
CANONICAL_EVENT_TYPES: tuple[str, ...] = (
    "page_view", "search", "product_view", "add_to_cart", "remove_from_cart", "purchase", "exposure",
)
USER_EVENT_TYPES: tuple[str, ...] = tuple(t for t in CANONICAL_EVENT_TYPES if t != "exposure")
"""What users do (silver.events); exposures are the server's, kept apart in silver.exposures."""


class CsvOptions(Section):
    """How CSV files of this source are laid out."""

    columns: list[str]
    """The fields of a line, in order (the header's names)."""
    header: bool = True
    """Files start with a header line (skipped, never counted as a record)."""
    delimiter: str = ","
    """Field separator."""
    quote: str = '"'
    """Quote character."""


class TimestampSpec(Section):
    """How the source writes event times."""

    format: str | None = None
    """Spark datetime pattern, e.g. `yyyy-MM-dd HH:mm:ss 'UTC'`; None means ISO-8601 (offsets honoured)."""
    timezone: str = "UTC"
    """Zone of times that carry no offset."""


class KafkaOptions(Section):
    """Where a `kind: kafka` source reads its messages (one record per message value)."""

    bootstrap_servers: str = "127.0.0.1:9092"
    """Comma-separated `host:port` list; the environment variable named by `bootstrap_servers_env`
    overrides it when set (one config for laptop and cluster)."""
    bootstrap_servers_env: str = "CLICKML_KAFKA_BOOTSTRAP"
    """Environment variable that, when set, replaces `bootstrap_servers`."""
    topic: str | None = None
    """The topic to read (or several, comma-separated); exactly one of `topic` and `pattern`."""
    pattern: str | None = None
    """A Java regular expression of topic names (Spark's `subscribePattern`)."""
    starting_offsets: Literal["earliest", "latest"] = "earliest"
    """Where a new checkpoint starts; afterwards the checkpoint decides."""
    max_offsets_per_trigger: int | None = Field(default=None, gt=0)
    """Cap on the messages of one micro-batch (None: everything available)."""
    max_message_bytes: int = Field(default=1_048_576, gt=0)
    """A message value over this many bytes is quarantined (`record_too_large`), not parsed."""
    follow_interval: str = "30 seconds"
    """Micro-batch interval of `clickml ingest --follow` (Spark's processingTime trigger)."""
    options_from_env: dict[str, str] = Field(default_factory=dict)
    """Kafka client options read from the environment, e.g. `{kafka.security.protocol:
    KAFKA_SECURITY_PROTOCOL, kafka.sasl.jaas.config: KAFKA_SASL_JAAS_CONFIG}`: option -> variable.
    Secrets never live in the file; a variable that is not set is an error naming it."""

    @field_validator("options_from_env")
    @classmethod
    def _kafka_options(cls, value: dict[str, str]) -> dict[str, str]:
        wrong = sorted(k for k in value if not k.startswith("kafka."))
        if wrong:
            raise ValueError(f"option(s) {', '.join(wrong)} must start with 'kafka.' (Kafka client settings)")
        return value

    @model_validator(mode="after")
    def _one_subscription(self) -> KafkaOptions:
        if (self.topic is None) == (self.pattern is None):
            raise ValueError("give exactly one of topic and pattern")
        return self

    def servers(self, env: Mapping[str, str] | None = None) -> str:
        """The bootstrap servers: the environment's override, else the file's."""
        env = os.environ if env is None else env
        return env.get(self.bootstrap_servers_env) or self.bootstrap_servers

    def client_options(self, source: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """`kafka.*` options for Spark's Kafka source: the servers plus `options_from_env`."""
        env = os.environ if env is None else env
        missing = sorted(v for v in self.options_from_env.values() if v not in env)
        if missing:
            raise ConfigError(
                f"source {source}: kafka.options_from_env names variable(s) {', '.join(missing)} that are not set"
            )
        return {"kafka.bootstrap.servers": self.servers(env), **{k: env[v] for k, v in self.options_from_env.items()}}


class SourceConfig(Section):
    """One source: landing files (`kind: files`) or a Kafka topic (`kind: kafka`)."""

    name: str
    """Source name, recorded on every bronze row."""
    description: str = ""
    """What this source is."""
    kind: Literal["files", "kafka"] = "files"
    """`files`: landing files under `path`; `kafka`: messages of a topic (`kafka:` section)."""
    format: Literal["json", "csv", "parquet"]
    """Record format (of a file, or of a Kafka message's value); `.gz` files are decompressed by extension."""
    path: str = ""
    """Folder of this source under `landing.root` (or an absolute path / URI); files sources only."""
    kafka: KafkaOptions | None = None
    """Broker and topic (required when kind is kafka)."""
    layout: Literal["hourly", "flat"] = "hourly"
    """`hourly`: files in `date=YYYY-MM-DD/hour=HH/` arrival folders; `flat`: anywhere below `path`."""
    csv: CsvOptions | None = None
    """CSV layout (required when format is csv)."""
    columns: dict[str, str]
    """Canonical field -> the source's field name."""
    constants: dict[str, str] = Field(default_factory=dict)
    """Canonical fields this source does not carry, set to a constant (e.g. currency: USD)."""
    timestamp: TimestampSpec = Field(default_factory=TimestampSpec)
    """Event time format and zone."""
    event_types: dict[str, str]
    """The source's event-type values -> canonical types."""
    required: list[str] = Field(default_factory=lambda: ["event_time", "event_type", "user_id"])
    """Canonical fields without which a record is quarantined (`missing_required_field`)."""
    max_price: float = Field(default=100_000.0, gt=0)
    """Prices above this are quarantined as absurd (`invalid_price`)."""

    @field_validator("columns", "constants")
    @classmethod
    def _canonical_keys(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(CANONICAL_FIELDS))
        if unknown:
            raise ValueError(f"unknown canonical field(s) {', '.join(unknown)}; canonical fields: {', '.join(CANONICAL_FIELDS)}")
        return value

    @field_validator("event_types")
    @classmethod
    def _canonical_types(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value.values()) - set(CANONICAL_EVENT_TYPES))
        if unknown:
            raise ValueError(f"unknown canonical event type(s) {', '.join(unknown)}; allowed: {', '.join(CANONICAL_EVENT_TYPES)}")
        return {str(k): v for k, v in value.items()}

    @model_validator(mode="after")
    def _consistent(self) -> SourceConfig:
        if self.kind == "kafka":
            if self.kafka is None:
                raise ValueError("kind kafka needs a kafka: section (bootstrap_servers, topic or pattern)")
            if self.format == "parquet":
                raise ValueError("a kafka source's messages are json or csv lines, not parquet")
        else:
            if self.kafka is not None:
                raise ValueError("a kafka: section needs kind: kafka")
            if not self.path:
                raise ValueError("path is required for a files source (its folder under landing.root)")
        for field in ("event_time", "event_type", "user_id"):
            if field not in self.columns:
                raise ValueError(f"columns must map the canonical field {field}")
        missing = sorted(set(self.required) - set(self.columns) - set(self.constants))
        if missing:
            raise ValueError(f"required field(s) {', '.join(missing)} are not mapped in columns")
        if self.format == "csv":
            if self.csv is None:
                raise ValueError("format csv needs a csv: section with the columns in order")
            unmapped = sorted(set(self.columns.values()) - set(self.csv.columns))
            if unmapped:
                raise ValueError(f"columns refer to field(s) {', '.join(unmapped)} that csv.columns does not list")
        return self

    @property
    def has_event_id(self) -> bool:
        return "event_id" in self.columns


def sources_dir(conf_dir: str | Path) -> Path:
    return Path(conf_dir) / "sources"


def available_sources(conf_dir: str | Path) -> list[str]:
    return sorted(p.stem for p in sources_dir(conf_dir).glob("*.yaml"))


def load_source(conf_dir: str | Path, name: str) -> SourceConfig:
    """Load and validate `conf/sources/<name>.yaml`; errors name the file and key path."""
    path = sources_dir(conf_dir) / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown source {name!r}: no file {path} (available sources: {', '.join(available_sources(conf_dir)) or 'none'})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    data.setdefault("name", name)
    try:
        return SourceConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, {}, str(path), SourceConfig)) from None
