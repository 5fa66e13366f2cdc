"""Stand-ins for the model server's tests: models and a registry answering like MLflow's, and the
store's recommender keys as `clickml materialize` leaves them (used by tests/unit/serve and the
experiment chain test in tests/integration/experiments)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import numpy as np

from pipelines.serve.online import write_meta, write_recommendations

AS_OF = dt.date(2024, 1, 10)


class Constant:
    """P(1) = `p` for every row, and the rows it saw."""

    def __init__(self, p: float):
        self.p, self.rows = p, []

    def predict_proba(self, rows):
        self.rows += list(rows)
        return np.full(len(rows), self.p)


class Registry:
    """Alias -> version, as the MLflow registry answers; `load` counts the models it made."""

    def __init__(self, versions):
        self.versions, self.loaded = dict(versions), []

    def resolve(self, name, alias, version):
        v = version if version is not None else self.versions[alias]
        return SimpleNamespace(version=str(v), run_id=f"run-{v}", tags={})

    def load(self, uri):
        self.loaded.append(uri)
        return Constant(int(uri.rsplit("/", 1)[1]) / 10)  # version 3 scores 0.3


def materialize_recs(client, url: str, version: str, items: dict[str, list[tuple[str, float]]], default: bool = False):
    """What `clickml materialize recommender --version V` leaves in the store (`default`: also the job's meta)."""
    rows = [{"user_id": u, "items": top} for u, top in items.items()]
    write_recommendations(rows, url=url, prefix="clickml", job="recommender", as_of=AS_OF.isoformat(),
                          model_version=version, ttl_seconds=3600, batch_size=10, client=client)
    meta = {"kind": "recommendations", "as_of_date": AS_OF.isoformat(), "users": len(rows), "model_version": version}
    write_meta(client, "clickml", "recommender", meta, 3600, model_version=version)
    if default:
        write_meta(client, "clickml", "recommender", meta, 3600)
