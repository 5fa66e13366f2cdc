"""Default hyperparameter search spaces: what `search: {method: random, trials: N}` draws from
when the model lists no `search.grid`.

Each parameter is a distribution: integers uniform in a range (or log-uniform, where the useful
values span orders of magnitude), reals log-uniform. The ranges are the usual starting points for
these algorithms on tabular data (tree depth 3-12, 20-200 trees, learning rate 0.02-0.3, ALS rank
8-64, ...); a model's `params` still fix anything not searched.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int
    log: bool = False

    def draw(self, rng: random.Random) -> int:
        if self.log:
            return int(round(math.exp(rng.uniform(math.log(self.low), math.log(self.high)))))
        return rng.randint(self.low, self.high)


@dataclass(frozen=True)
class LogUniform:
    low: float
    high: float

    def draw(self, rng: random.Random) -> float:
        return float(f"{math.exp(rng.uniform(math.log(self.low), math.log(self.high))):.4g}")


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float

    def draw(self, rng: random.Random) -> float:
        return float(f"{rng.uniform(self.low, self.high):.4g}")


_FOREST = {"maxDepth": IntRange(3, 12), "numTrees": IntRange(20, 200), "minInstancesPerNode": IntRange(1, 50, log=True)}
_BOOSTED = {"maxDepth": IntRange(2, 8), "maxIter": IntRange(20, 150), "stepSize": LogUniform(0.02, 0.3),
            "minInstancesPerNode": IntRange(1, 50, log=True)}
_LINEAR = {"regParam": LogUniform(1e-4, 1.0), "elasticNetParam": Uniform(0.0, 1.0)}

SPACES = {
    "logistic_regression": _LINEAR,
    "linear_regression": _LINEAR,
    "random_forest": _FOREST,
    "random_forest_regression": _FOREST,
    "gbt": _BOOSTED,
    "gbt_regression": _BOOSTED,
    "als": {"rank": IntRange(8, 64), "regParam": LogUniform(1e-3, 1.0), "alpha": LogUniform(0.5, 40.0)},
}


def draw(algorithm: str, trials: int, seed: int, implicit: bool = True) -> list[dict[str, int | float]]:
    """`trials` parameter combinations drawn from `algorithm`'s default space (deterministic for a
    seed; repeated combinations are drawn again, up to a bound)."""
    space = dict(SPACES[algorithm])
    if algorithm == "als" and not implicit:
        space.pop("alpha")  # confidence scaling: implicit feedback only
    rng = random.Random(seed)
    drawn: list[dict[str, int | float]] = []
    for _ in range(trials * 20):
        combo = {name: dist.draw(rng) for name, dist in sorted(space.items())}
        if combo not in drawn:
            drawn.append(combo)
        if len(drawn) == trials:
            break
    return drawn
