"""Drift statistics judged against the job's thresholds: ok, warn or alert, per statistic and feature.

- psi: warn at `psi_warn`, alert at `psi_alert`, when the chi-square test of the same cells is
  significant (p < `chi2_p_value`; the p-value is stored with the PSI). On a small population
  sampling noise alone gives a PSI around (cells - 1) (1/n + 1/m): a few hundred rows in ten bins
  would cross 0.1 with no drift at all.
- ks: significant when p < `ks_p_value`; then warn when D >= `ks_warn_statistic`, alert when
  D >= `ks_alert_statistic` (a minimum effect size: on large populations tiny shifts are
  significant).
- chi2: significant when p < `chi2_p_value`; its effect size is the feature's JS distance (warn at
  `js_warn`, alert at `js_alert`); without a JS distance a significant chi-square warns.
- js: warn at `js_warn`, alert at `js_alert`, under the same significance condition as PSI.
A NaN statistic (no rows on one side) is `ok` with a note; a feature's status is its worst.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipelines.config.monitoring import DriftThresholds, MonitorSpec
from pipelines.monitor.drift import DriftStat

OK, WARN, ALERT = "ok", "warn", "alert"
RANK = {OK: 0, WARN: 1, ALERT: 2}


@dataclass(frozen=True)
class Judged:
    stat: DriftStat
    status: str
    reason: str


def _level(value: float, warn: float, alert: float) -> str:
    return ALERT if value >= alert else WARN if value >= warn else OK


def judge(stat: DriftStat, t: DriftThresholds, js: float | None = None) -> Judged:
    """The status of one statistic; `js` is the feature's JS distance (the chi-square's effect size)."""
    value = stat.value
    if value is None or math.isnan(value):
        return Judged(stat, OK, "undefined (no rows on one side)")
    if stat.statistic in ("psi", "js"):
        name, warn, alert = ("PSI", t.psi_warn, t.psi_alert) if stat.statistic == "psi" else ("JS distance", t.js_warn, t.js_alert)
        reason = f"{name} {value:.4f} (warn {warn}, alert {alert})"
        if stat.p_value is not None and stat.p_value >= t.chi2_p_value:  # None: a row stored before the p-value was
            return Judged(stat, OK, f"{reason}, but its cells' chi-square p {stat.p_value:.3g} is not below "
                                    f"{t.chi2_p_value} ({stat.n_current} current rows): sampling noise")
        return Judged(stat, _level(value, warn, alert), reason)
    if stat.statistic == "ks":
        p = stat.p_value if stat.p_value is not None else 1.0
        status = _level(value, t.ks_warn_statistic, t.ks_alert_statistic) if p < t.ks_p_value else OK
        return Judged(stat, status, f"KS D {value:.4f}, p {p:.3g} (p < {t.ks_p_value} and D >= {t.ks_warn_statistic} / "
                                    f"{t.ks_alert_statistic})")
    if stat.statistic == "chi2":
        p = stat.p_value if stat.p_value is not None else 1.0
        if p >= t.chi2_p_value:
            return Judged(stat, OK, f"chi-square p {p:.3g} (not below {t.chi2_p_value})")
        if js is None or math.isnan(js):
            return Judged(stat, WARN, f"chi-square p {p:.3g} < {t.chi2_p_value} (no JS distance for the effect size)")
        status = _level(js, t.js_warn, t.js_alert)
        return Judged(stat, status, f"chi-square p {p:.3g} < {t.chi2_p_value}, effect JS {js:.4f} (warn {t.js_warn}, "
                                    f"alert {t.js_alert})")
    raise ValueError(f"unknown drift statistic {stat.statistic!r} (feature {stat.feature})")


def judge_all(stats: list[DriftStat], spec: MonitorSpec) -> list[Judged]:
    """Every statistic of `spec.statistics`, judged; features outside `spec.features` or in
    `spec.ignore` are kept with status ok (stored, not judged). The score is always judged."""
    js = {s.feature: s.value for s in stats if s.statistic == "js"}
    out = []
    for stat in stats:
        if stat.statistic not in spec.statistics:
            continue
        judged = judge(stat, spec.thresholds, js.get(stat.feature))
        excluded = stat.kind != "score" and (
            stat.feature in spec.ignore or (spec.features is not None and stat.feature not in spec.features))
        out.append(Judged(stat, OK, f"not judged ({judged.reason})") if excluded else judged)
    return out


def feature_status(judged: list[Judged]) -> dict[str, str]:
    """Worst status per feature."""
    worst: dict[str, str] = {}
    for j in judged:
        current = worst.get(j.stat.feature)
        if current is None or RANK[j.status] > RANK[current]:
            worst[j.stat.feature] = j.status
    return worst
