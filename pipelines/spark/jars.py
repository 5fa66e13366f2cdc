"""The JVM jars of jvm/pom.xml: resolved once with Maven into a cache, found again by every session.

    python -m pipelines.spark.jars resolve          # what `make jars` runs
    python -m pipelines.spark.jars path spark       # the folder of one profile's jars

Layout: `<cache>/<first 16 hex of the pom's sha256>/<profile>/*.jar` plus `manifest.json` (the
jars and their sha256). A changed pom resolves into a new folder; an existing, verified folder
is reused. `<cache>` is `$CLICKML_JAR_CACHE`, else `~/.cache/clickml/jars`.

`$CLICKML_JARS_DIR` points at a folder that already holds the profiles (a Docker image, a
cluster's shared volume): then nothing is resolved and no pom is needed.

Nothing here resolves jars at run time: a session without its jars fails with the command that
resolves them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)

PROFILES = ("spark", "hdfs", "kafka")
"""Maven profiles of jvm/pom.xml, one folder of jars each."""
REQUIRED = {
    "spark": ("delta-spark_", "delta-storage-", "hadoop-aws-", "bundle-", "spark-sql-kafka-0-10_", "kafka-clients-"),
    "hdfs": ("hadoop-hdfs-", "hadoop-hdfs-client-", "hadoop-common-"),
    "kafka": ("kafka_2.13-", "kafka-clients-", "kafka-server-", "kafka-raft-", "kafka-metadata-",
              "kafka-storage-", "kafka-tools-", "log4j-core-", "log4j-slf4j-impl-"),
}
"""File-name prefixes each profile must hold after resolution (a broken pom fails loudly)."""
MANIFEST = "manifest.json"


class JarsMissingError(RuntimeError):
    """The jars a session needs are not where they should be."""


def repo_pom() -> Path:
    """jvm/pom.xml of this checkout (the package's parent folder)."""
    return Path(__file__).resolve().parents[2] / "jvm" / "pom.xml"


def cache_root() -> Path:
    return Path(os.environ.get("CLICKML_JAR_CACHE") or Path.home() / ".cache" / "clickml" / "jars")


def pom_key(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()[:16]


def jars_home(pom: Path | None = None) -> Path:
    """The folder holding one sub-folder per profile."""
    if os.environ.get("CLICKML_JARS_DIR"):
        return Path(os.environ["CLICKML_JARS_DIR"])
    pom = pom or repo_pom()
    if not pom.exists():
        raise JarsMissingError(
            f"no {pom} and no $CLICKML_JARS_DIR: point CLICKML_JARS_DIR at a folder with the resolved jars "
            "(spark/ holding delta-spark and hadoop-aws), or pass them with spark-submit --jars"
        )
    return cache_root() / pom_key(pom)


def profile_jars(profile: str = "spark", pom: Path | None = None) -> list[Path]:
    """The verified jars of `profile`, sorted; raises JarsMissingError naming the fix."""
    folder = jars_home(pom) / profile
    manifest = folder / MANIFEST
    if not manifest.exists():
        raise JarsMissingError(
            f"the {profile} jars are not resolved in {folder}: run `make jars` "
            f"(or `python -m pipelines.spark.jars resolve`), or set CLICKML_JARS_DIR"
        )
    names = json.loads(manifest.read_text())["jars"]
    jars = [folder / name for name in sorted(names)]
    missing = [j.name for j in jars if not j.exists()]
    if missing:
        raise JarsMissingError(f"{folder}: {len(missing)} jar(s) of the manifest are gone ({', '.join(missing[:3])}); run `make jars`")
    return jars


def spark_jars_setting(pom: Path | None = None) -> str:
    """The value of `spark.jars`: the spark profile's jars, comma-separated absolute paths."""
    return ",".join(str(j) for j in profile_jars("spark", pom))


def hdfs_classpath(pom: Path | None = None) -> str:
    """The `java -cp` of the test and local-stack HDFS (NameNode, DataNode)."""
    return os.pathsep.join(str(j) for j in profile_jars("hdfs", pom))


def kafka_classpath(pom: Path | None = None) -> str:
    """The `java -cp` of the test and local-stack Kafka broker and of Kafka's command-line tools."""
    return os.pathsep.join(str(j) for j in profile_jars("kafka", pom))


def pyspark_jar_names() -> set[str]:
    """Artifact names (file name without version) of the jars that pyspark ships."""
    import pyspark

    return {_artifact(p.name) for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}


def _artifact(file_name: str) -> str:
    """`jackson-databind-2.21.2.jar` -> `jackson-databind`; `bundle-2.29.52.jar` -> `bundle`."""
    stem = file_name[:-4] if file_name.endswith(".jar") else file_name
    parts = stem.split("-")
    for i, part in enumerate(parts):
        if i and part[:1].isdigit():
            return "-".join(parts[:i])
    return stem


def verify(folder: Path, profile: str, spark_jars: set[str] | None) -> list[str]:
    """Problems with a freshly resolved folder (empty when it is good)."""
    problems = []
    jars = sorted(p.name for p in folder.glob("*.jar"))
    for prefix in REQUIRED.get(profile, ()):
        if not any(j.startswith(prefix) for j in jars):
            problems.append(f"no {prefix}*.jar")
    for name in jars:
        try:
            with zipfile.ZipFile(folder / name) as jar:
                if jar.testzip() is not None:
                    problems.append(f"{name}: corrupt entry")
        except zipfile.BadZipFile:
            problems.append(f"{name}: not a jar")
    if spark_jars is not None:
        # Spark's own jars must win: a second copy of one of them (another version) on spark.jars
        # is a classpath conflict waiting to happen. Excluded in the pom; checked here.
        clashes = [j for j in jars if _artifact(j) in spark_jars]
        problems += [f"{j}: pyspark already ships {_artifact(j)} (exclude it in jvm/pom.xml)" for j in clashes]
    return problems


def resolve(pom: Path | None = None, profiles=PROFILES, mvn: str = "mvn", quiet: bool = True) -> Path:
    """Resolve every profile of the pom into the cache (skipping verified folders)."""
    pom = pom or repo_pom()
    home = jars_home(pom)
    for profile in profiles:
        target = home / profile
        if (target / MANIFEST).exists():
            log.info("%s jars: cached in %s", profile, target)
            continue
        home.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{profile}-", dir=home))
        cmd = [
            mvn, "-B", "-f", str(pom), f"-P{profile}", "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
        ]
        if quiet:
            cmd.insert(1, "-q")
        print(f"resolving the {profile} jars of {pom} with Maven into {target}", file=sys.stderr, flush=True)
        done = subprocess.run(cmd)
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise JarsMissingError(f"mvn failed ({done.returncode}) resolving profile {profile} of {pom}: {' '.join(cmd)}")
        problems = verify(staging, profile, pyspark_jar_names() if profile == "spark" else None)
        if problems:
            shutil.rmtree(staging, ignore_errors=True)
            raise JarsMissingError(f"profile {profile} of {pom}: " + "; ".join(problems))
        jars = sorted(p.name for p in staging.glob("*.jar"))
        digests = {name: hashlib.sha256((staging / name).read_bytes()).hexdigest() for name in jars}
        (staging / MANIFEST).write_text(json.dumps({"pom": str(pom), "profile": profile, "jars": digests}, indent=1))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        size = sum((target / j).stat().st_size for j in jars)
        print(f"{profile}: {len(jars)} jars, {size / 1e6:.0f} MB in {target}", file=sys.stderr, flush=True)
    return home


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.spark.jars", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    res = sub.add_parser("resolve", help="resolve the pom's profiles into the cache (make jars)")
    res.add_argument("--pom", type=Path, default=None)
    res.add_argument("--profile", action="append", choices=PROFILES, help="default: all")
    res.add_argument("--verbose", action="store_true", help="show Maven's output")
    path = sub.add_parser("path", help="print the folder (or classpath) of a profile's jars")
    path.add_argument("profile", choices=PROFILES)
    path.add_argument("--classpath", action="store_true", help="print a java -cp / spark.jars list instead")
    args = parser.parse_args(argv)
    try:
        if args.command == "resolve":
            resolve(args.pom, tuple(args.profile or PROFILES), quiet=not args.verbose)
        else:
            jars = profile_jars(args.profile)
            print(",".join(map(str, jars)) if args.classpath else jars[0].parent)
    except JarsMissingError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
