"""Load `conf/base.yaml` + `conf/profiles/<profile>.yaml` into a validated `ClickmlConfig`.

- The profile comes from the `profile` argument, else `$CLICKML_PROFILE`, else `local`.
- The config directory from the `conf_dir` argument, else `$CLICKML_CONF_DIR`, else `./conf`,
  else the `conf/` directory of the source checkout.
- `${VAR}` and `${VAR:-default}` in string values are replaced from the environment (secrets
  stay out of the files); `$${` is a literal `${`.
- A user config file (the `user_config` argument, else `$CLICKML_CONFIG`; `clickml --config
  my.yaml`) is merged over base + profile, so a job or a setting can be added without copying
  `conf/`. Relative paths in it (lake.root, landing.root, logging.dir, a job's data.path) are
  taken from that file's folder.
- Overrides (`--set spark.master=local[2]`) are applied last; values are parsed as YAML.
- Errors name the file, the key path and, for unknown keys, the allowed keys.
"""

from __future__ import annotations

import os
import re
import typing
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml
from pydantic import BaseModel, ValidationError

from pipelines.config.models import ClickmlConfig

ENV_PROFILE = "CLICKML_PROFILE"
ENV_CONF_DIR = "CLICKML_CONF_DIR"
ENV_USER_CONFIG = "CLICKML_CONFIG"
DEFAULT_PROFILE = "local"
OVERRIDES_SOURCE = "--set"

_ENV_PATTERN = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

KeyPath = tuple[str, ...]


class ConfigError(ValueError):
    """The configuration cannot be loaded; the message names file, key path and the fix."""


def resolve_conf_dir(conf_dir: str | os.PathLike[str] | None = None) -> Path:
    """Find the config directory (argument, `$CLICKML_CONF_DIR`, `./conf`, the checkout's `conf/`)."""
    candidates: list[Path] = []
    if conf_dir:
        candidates = [Path(conf_dir)]
    elif os.environ.get(ENV_CONF_DIR):
        candidates = [Path(os.environ[ENV_CONF_DIR])]
    else:
        candidates = [Path.cwd() / "conf", Path(__file__).resolve().parents[2] / "conf"]
    for candidate in candidates:
        if (candidate / "base.yaml").is_file():
            return candidate.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise ConfigError(f"no base.yaml found in the config directory (tried: {tried}); pass --conf-dir or set ${ENV_CONF_DIR}")


def available_profiles(conf_dir: Path) -> list[str]:
    """Profiles are the YAML files in `<conf_dir>/profiles/`."""
    return sorted(p.stem for p in (conf_dir / "profiles").glob("*.yaml"))


def load_config(
    profile: str | None = None,
    conf_dir: str | os.PathLike[str] | None = None,
    overrides: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
    user_config: str | os.PathLike[str] | None = None,
) -> ClickmlConfig:
    """Load, merge, interpolate and validate the configuration for a profile (and a user file)."""
    env = os.environ if env is None else env
    directory = resolve_conf_dir(conf_dir)
    profile = profile or env.get(ENV_PROFILE) or DEFAULT_PROFILE
    profile_file = directory / "profiles" / f"{profile}.yaml"
    if not profile_file.is_file():
        known = ", ".join(available_profiles(directory)) or "none"
        raise ConfigError(f"unknown profile {profile!r}: no file {profile_file} (available profiles: {known})")

    origins: dict[KeyPath, str] = {}
    merged: dict[str, Any] = {}
    for path in (directory / "base.yaml", profile_file):
        data = _interpolate(_read_yaml(path), str(path), (), env)
        _merge(merged, data, str(path), (), origins)
    user_file = user_config or env.get(ENV_USER_CONFIG)
    if user_file:
        path = Path(user_file).expanduser().resolve()
        if not path.is_file():
            given = "--config" if user_config else f"${ENV_USER_CONFIG}"
            raise ConfigError(f"{given}: user config file {path} does not exist")
        data = _anchor_paths(_interpolate(_read_yaml(path), str(path), (), env), path.parent)
        _merge(merged, data, str(path), (), origins)
    if overrides:
        _merge(merged, _parse_overrides(overrides), OVERRIDES_SOURCE, (), origins)

    merged["profile"] = profile
    merged["project_root"] = str(directory.parent)
    merged["conf_dir"] = str(directory)
    try:
        config = ClickmlConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, origins, str(directory / "base.yaml"))) from None
    return _resolve_paths(config, directory.parent)


def _anchor_paths(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Relative local paths of a user config file, made absolute against its folder."""

    def absolute(value: Any) -> Any:
        if not isinstance(value, str) or not value or _URI_SCHEME.match(value) or value.startswith(("file:", "/")):
            return value
        return str((folder / value).resolve())

    for section, key in (("lake", "root"), ("landing", "root"), ("logging", "dir")):
        if isinstance(data.get(section), dict) and key in data[section]:
            data[section][key] = absolute(data[section][key])
    jobs = data.get("training", {}).get("jobs") if isinstance(data.get("training"), dict) else None
    for job in (jobs or {}).values() if isinstance(jobs, dict) else ():
        if isinstance(job, dict) and isinstance(job.get("data"), dict) and "path" in job["data"]:
            job["data"]["path"] = absolute(job["data"]["path"])
    return data


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def _interpolate(value: Any, source: str, path: KeyPath, env: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, source, path + (str(k),), env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, source, path + (str(i),), env) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{source}: {_dotted(path)}: environment variable ${{{name}}} is not set "
            f"(set it, or give a default with ${{{name}:-value}})"
        )

    return _ENV_PATTERN.sub(replace, value)


def _merge(target: dict[str, Any], overlay: Mapping[str, Any], source: str, path: KeyPath, origins: dict[KeyPath, str]) -> None:
    """Deep-merge `overlay` into `target`; mappings merge key by key, anything else replaces."""
    for key, value in overlay.items():
        key_path = path + (str(key),)
        origins[key_path] = source
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value, source, key_path, origins)
        else:
            target[key] = value
            if isinstance(value, dict):
                _record_origins(value, source, key_path, origins)


def _record_origins(value: Mapping[str, Any], source: str, path: KeyPath, origins: dict[KeyPath, str]) -> None:
    for key, child in value.items():
        origins[path + (str(key),)] = source
        if isinstance(child, dict):
            _record_origins(child, source, path + (str(key),), origins)


def _parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{OVERRIDES_SOURCE} {item!r}: expected KEY.PATH=VALUE, e.g. spark.master=local[2]")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{OVERRIDES_SOURCE} {item!r}: {part} is set both as a value and as a section")
        node[parts[-1]] = value
    return result


def format_validation_error(
    exc: ValidationError, origins: Mapping[KeyPath, str], default_source: str, root: type[BaseModel] = ClickmlConfig
) -> str:
    lines = [f"invalid configuration ({exc.error_count()} error{'s' if exc.error_count() > 1 else ''}):"]
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        source = _origin(loc, origins, default_source)
        where = _dotted(loc) or "(top level)"
        if error["type"] == "extra_forbidden":
            allowed = ", ".join(sorted(_allowed_keys(loc[:-1], root)))
            lines.append(f"  {source}: {where}: unknown key; allowed keys here: {allowed}")
        elif error["type"] == "missing":
            lines.append(f"  {source}: {where}: required key is missing")
        else:
            got = error.get("input")
            shown = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
            lines.append(f"  {source}: {where}: {error['msg']}{shown}")
    return "\n".join(lines)


def _origin(loc: KeyPath, origins: Mapping[KeyPath, str], default: str) -> str:
    for end in range(len(loc), 0, -1):
        if loc[:end] in origins:
            return origins[loc[:end]]
    return default


def _allowed_keys(path: KeyPath, root: type[BaseModel] = ClickmlConfig) -> list[str]:
    """Field names of the model section at `path` (walking nested models by field name)."""
    model: type[BaseModel] = root
    parts = list(path)
    while parts:
        field = model.model_fields.get(parts.pop(0))
        annotation = getattr(field, "annotation", None)
        values = _dict_values_model(annotation)
        if values is not None:  # e.g. training.jobs.<job>, experiments.<id>: the next part is a name
            if not parts:
                return []
            parts.pop(0)
            model = values
            continue
        annotation = _model_in(annotation)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _dict_values_model(annotation):
    """The model class of `dict[str, Model]` (or `dict[str, Model] | None`), else None."""
    for candidate in (annotation, *(getattr(annotation, "__args__", ()) or ())):
        if typing.get_origin(candidate) is dict:
            args = typing.get_args(candidate)
            if len(args) == 2 and isinstance(args[1], type) and issubclass(args[1], BaseModel):
                return args[1]
    return None


def _model_in(annotation):
    """The model class inside `Model | None`, or the annotation itself."""
    for arg in getattr(annotation, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return annotation


def _dotted(path: KeyPath) -> str:
    return ".".join(path)


def _resolve_paths(config: ClickmlConfig, project_root: Path) -> ClickmlConfig:
    """Make relative local paths absolute against the project root (the config dir's parent)."""

    def absolute(value: str) -> str:
        if _URI_SCHEME.match(value) or value.startswith("file:"):
            return value
        return str((project_root / value).resolve())

    config.lake.root = absolute(config.lake.root)
    config.landing.root = absolute(config.landing.root)
    if config.logging.dir is not None:
        config.logging.dir = absolute(config.logging.dir)
    return config
