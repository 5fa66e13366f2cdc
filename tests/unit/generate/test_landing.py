"""The landing writer: folder layout, file names, order, gzip, replacement."""

from __future__ import annotations

import datetime as dt
import gzip
import os

from pipelines.generate import clock, landing

BASE = clock.epoch_millis(dt.datetime(2024, 1, 2, 10, 0, 0))


def _files(root):
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            found[os.path.relpath(os.path.join(folder, name), root)] = os.path.join(folder, name)
    return found


def _lines(spark):
    rows = [(f'{{"n":{i}}}', BASE + (i * 7 % 25) * 5 * 60_000) for i in range(25)]  # spread over ~2 hours
    return spark.createDataFrame(rows, "line string, arrival_ms long"), rows


def test_layout_names_and_order(spark, tmp_path):
    root = str(tmp_path / "landing" / "src")
    os.makedirs(os.path.join(root, "date=1999-01-01", "hour=00"))  # stale output is replaced
    df, rows = _lines(spark)
    landed = landing.write_lines(spark, df, root)
    files = _files(root)
    assert sorted(files) == [
        "date=2024-01-02/hour=10/part-00000.jsonl",
        "date=2024-01-02/hour=11/part-00000.jsonl",
        "date=2024-01-02/hour=12/part-00000.jsonl",
    ]
    assert landed.files == 3 and landed.hours == 3
    for relative, path in files.items():
        hour = int(relative.split("hour=")[1][:2])
        expected = sorted((a, line) for line, a in rows if (a - BASE) // clock.MS_PER_HOUR == hour - 10)
        with open(path, encoding="utf-8") as handle:
            assert handle.read().splitlines() == [line for _, line in expected]


def test_gzip_and_several_files_per_hour(spark, tmp_path):
    root = str(tmp_path / "src")
    df, rows = _lines(spark)
    landing.write_lines(spark, df, root, gzip=True, files_per_hour=3)
    files = _files(root)
    assert all(name.split("/")[-1].startswith("part-0000") and name.endswith(".jsonl.gz") for name in files)
    assert not any("bucket=" in name for name in files)
    content = []
    for path in files.values():
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            content.extend(handle.read().splitlines())
    assert sorted(content) == sorted(line for line, _ in rows)
