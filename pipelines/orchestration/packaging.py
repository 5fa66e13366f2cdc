"""Ship the `pipelines` package to Spark executors: a zip for `--py-files`.

    python -m pipelines.orchestration.packaging pyfiles dist/clickml-pipelines.zip

`--py-files` puts the zip first on the executors' `sys.path`, ahead of any installed copy, so
executors run exactly the submitted code. It carries only our package: the executors' Python must
already have the dependencies (pyspark, pyarrow, pandas, ...), e.g. from the cluster image. Where it
does not, ship a whole packed virtual environment with `--archives` (`make pack-env`, see
docs/orchestration.md).
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def build_pyfiles_zip(target: str | Path, package_root: Path = PACKAGE_ROOT) -> Path:
    """Zip the `pipelines` package (sources and package data, no caches) into `target`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(package_root.rglob("*")):
            if path.is_dir() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
                continue
            archive.write(path, Path(package_root.name) / path.relative_to(package_root))
    tmp.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Package clickml for Spark executors.")
    sub = parser.add_subparsers(dest="command", required=True)
    pyfiles = sub.add_parser("pyfiles", help="zip the pipelines package for --py-files")
    pyfiles.add_argument("target", nargs="?", default="dist/clickml-pipelines.zip")
    args = parser.parse_args(argv)
    path = build_pyfiles_zip(args.target)
    print(f"{path} ({path.stat().st_size / 1024:.0f} KiB): spark-submit --py-files {path} jobs/<job>.py ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
