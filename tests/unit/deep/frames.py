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


def regression_task(folder, **overrides):
    """A `TrainTask` on a small regression problem (label `y` = 2x + 3 for kind b, plus noise),
    written as Parquet under `folder`."""
    from pipelines.deep.features import FeatureSchema
    from pipelines.deep.network import NetConfig
    from pipelines.deep.shards import folder_source
    from pipelines.deep.store import CheckpointStore, Folder
    from pipelines.deep.training import TrainTask

    rng = np.random.default_rng(3)
    x = rng.normal(size=1200)
    kind = rng.choice(["a", "b"], size=1200)
    frame = pd.DataFrame({"x": x, "kind": kind, "y": 2 * x + (kind == "b") * 3 + rng.normal(scale=0.1, size=1200)})
    write_parquet_files(frame.iloc[:1000], folder / "train", files=2)
    write_parquet_files(frame.iloc[1000:], folder / "validation", files=1)
    features = FeatureSchema(("x",), (0.0,), (1.0,), ("kind",), (("a", "b"),))
    settings = {"batch_size": 64, "max_epochs": 6, "learning_rate": 0.02}
    settings.update(overrides)
    return TrainTask(task="regression", features=features, net=NetConfig(1, features.cardinalities, hidden=(16,)),
                     label="y", weight=None, train=folder_source(Folder(str(folder / "train"))),
                     validation=folder_source(Folder(str(folder / "validation"))),
                     store=CheckpointStore(str(folder / "c")), **settings)
