"""Tiny generated tabular data for the deep-model tests (learnable: AUC ~0.85 is reachable)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def binary_frame(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    device = rng.choice(["web", "app", "tv"], size=n)
    logit = 1.5 * x1 - x2 + (device == "app") * 1.5 - 0.5
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return pd.DataFrame({"x1": x1, "x2": x2, "device": device, "label": label})


def write_parquet_files(frame: pd.DataFrame, folder, files: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(np.array_split(np.arange(len(frame)), files)):
        pq.write_table(pa.Table.from_pandas(frame.iloc[part], preserve_index=False), folder / f"part-{i:03d}.parquet")
