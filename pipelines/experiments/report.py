"""The HTML report of one experiment look: what a person reads before trusting a decision.

One self-contained page (plots embedded as base64 PNG): the decision and why; conversion over
time per variant (cumulative rate by first-exposure day, from `daily_aggregates`); the Beta
posterior densities of each variant's conversion rate; the lift of each variant over the control
with its intervals (z-test / Wald, Bayesian credible, CUPED-adjusted; absolute and relative); the
mSPRT's always-valid p-value over the daily looks; then the tables (variants, comparisons, SRM).
Written beside the Data Docs (`<validation results root>/experiments/<experiment>/<as-of>.html`)
and logged to an MLflow run of the configured MLflow experiment (tagged with the experiment id and
date).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import logging
import math
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import DateFormatter
from matplotlib.figure import Figure
from scipy import stats

from pipelines.config import ClickmlConfig

log = logging.getLogger(__name__)


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(alt: str, png: str) -> str:
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{png}'>"


def _day(value) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def _date_axis(ax, days: list[dt.date]) -> None:
    """One tick per day (a tick every few days beyond two weeks)."""
    step = max(1, math.ceil(len(days) / 14))
    ax.set_xticks(days[::step])
    ax.xaxis.set_major_formatter(DateFormatter("%Y-%m-%d"))
    ax.tick_params(axis="x", rotation=45, labelsize=7)


def conversion_plot(daily: list[dict], control: str) -> str:
    """Cumulative conversion rate by first-exposure day per variant (solid), daily rate (dotted)."""
    by_variant: dict[str, dict] = {}
    for r in daily:
        by_variant.setdefault(r["variant"], {})[_day(r["day"])] = (int(r["users"]), int(r["conversions"] or 0))
    days = sorted({d for v in by_variant.values() for d in v})
    fig = Figure(figsize=(6.4, 3.4))
    ax = fig.add_subplot()
    for name in sorted(by_variant, key=lambda n: (n != control, n)):
        users = np.array([by_variant[name].get(d, (0, 0))[0] for d in days], dtype=float)
        conv = np.array([by_variant[name].get(d, (0, 0))[1] for d in days], dtype=float)
        cum_u, cum_c = np.cumsum(users), np.cumsum(conv)
        cumulative = np.divide(cum_c, cum_u, out=np.full_like(cum_c, np.nan), where=cum_u > 0)
        line, = ax.plot(days, cumulative, marker="o", label=f"{name} (cumulative)")
        each = np.divide(conv, users, out=np.full_like(conv, np.nan), where=users > 0)
        ax.plot(days, each, linestyle=":", color=line.get_color(), alpha=0.6)
    ax.set_ylabel("conversion rate")
    ax.set_xlabel("day of first exposure (dotted: that day's users only)")
    ax.set_title("Conversion over time", fontsize=10)
    _date_axis(ax, days)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def posterior_plot(posteriors: dict[str, tuple[float, float]]) -> str:
    """Beta posterior density of each variant's conversion rate."""
    lo = min(stats.beta.ppf(1e-4, a, b) for a, b in posteriors.values())
    hi = max(stats.beta.ppf(1 - 1e-4, a, b) for a, b in posteriors.values())
    x = np.linspace(lo, hi, 400)
    fig = Figure(figsize=(6.4, 3.4))
    ax = fig.add_subplot()
    for name, (a, b) in posteriors.items():
        ax.plot(x, stats.beta.pdf(x, a, b), label=f"{name}: Beta({a:g}, {b:g})")
        ax.fill_between(x, stats.beta.pdf(x, a, b), alpha=0.15)
    ax.set_xlabel("conversion rate")
    ax.set_ylabel("posterior density")
    ax.set_title("Posterior of the conversion rate", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def lift_intervals(comparisons: dict) -> tuple[list[tuple], list[tuple]]:
    """([(label, estimate, low, high)] for the absolute lift, the same for the relative lift) of
    every comparison and method that has an interval (undefined ones are left out)."""
    absolute, relative = [], []
    for name, c in sorted(comparisons.items()):
        z, bayes, cuped = c.get("conversion", {}), c.get("bayes", {}), c.get("cuped", {}).get("converted", {})
        candidates = [
            (absolute, f"{name}: z-test (Wald)", z.get("abs_lift"), z.get("abs_ci")),
            (absolute, f"{name}: Bayesian", _diff(bayes), bayes.get("abs_lift_ci")),
            (absolute, f"{name}: CUPED", cuped.get("adjusted", {}).get("abs_lift"), cuped.get("adjusted", {}).get("abs_ci")),
            (relative, f"{name}: z-test (log ratio)", z.get("rel_lift"), z.get("rel_ci")),
            (relative, f"{name}: Bayesian", _ratio(bayes), bayes.get("rel_lift_ci")),
        ]
        for target, label, estimate, ci in candidates:
            if estimate is not None and ci and None not in ci:
                target.append((label, float(estimate), float(ci[0]), float(ci[1])))
    return absolute, relative


def _diff(bayes: dict):
    mt, mc = bayes.get("mean_treatment"), bayes.get("mean_control")
    return None if mt is None or mc is None else mt - mc


def _ratio(bayes: dict):
    mt, mc = bayes.get("mean_treatment"), bayes.get("mean_control")
    return None if mt is None or not mc else mt / mc - 1


def lift_plot(absolute: list[tuple], relative: list[tuple], level: float) -> str:
    """Forest plot: each method's estimate and interval of the lift over the control."""
    fig = Figure(figsize=(6.4, 1.2 + 0.45 * (len(absolute) + len(relative))))
    panels = [(absolute, "absolute lift (percentage points)", 100.0), (relative, "relative lift (%)", 100.0)]
    panels = [p for p in panels if p[0]]
    for i, (points, title, scale) in enumerate(panels):
        ax = fig.add_subplot(len(panels), 1, i + 1)
        y = list(range(len(points)))[::-1]
        est = [p[1] * scale for p in points]
        err = [[(p[1] - p[2]) * scale for p in points], [(p[3] - p[1]) * scale for p in points]]
        ax.errorbar(est, y, xerr=err, fmt="o", capsize=4)
        ax.axvline(0.0, color="#888", linestyle="--", linewidth=1)
        ax.set_yticks(y)
        ax.set_yticklabels([p[0] for p in points], fontsize=8)
        ax.set_title(f"{title}, {100 * level:.0f}% intervals", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def sequential_plot(comparisons: dict, alpha: float) -> str | None:
    """The mSPRT's always-valid p-value over the daily looks (None without a path)."""
    paths = {name: c["sequential"] for name, c in sorted(comparisons.items())
             if c.get("sequential", {}).get("days") and c["sequential"].get("p_values")}
    if not paths:
        return None
    fig = Figure(figsize=(6.4, 3.2))
    ax = fig.add_subplot()
    for name, seq in paths.items():
        ax.plot([_day(d) for d in seq["days"]], seq["p_values"], marker="o", label=name)
    ax.axhline(alpha, color="#c62828", linestyle="--", linewidth=1, label=f"alpha = {alpha:g}")
    ax.set_yscale("log")
    ax.set_ylabel("always-valid p-value")
    ax.set_title("Sequential test (mSPRT): safe to look every day", fontsize=10)
    _date_axis(ax, sorted({_day(d) for seq in paths.values() for d in seq["days"]}))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def _n(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}g}"


def _ci(pair) -> str:
    if not pair or None in pair:
        return ""
    return f"[{_n(pair[0])}, {_n(pair[1])}]"


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _comparison_rows(comparisons: dict) -> list[list[str]]:
    rows = []
    for name, c in sorted(comparisons.items()):
        z, b, seq, d = c.get("conversion", {}), c.get("bayes", {}), c.get("sequential", {}), c.get("decision", {})
        cuped = c.get("cuped", {}).get("converted", {})
        rows.append([
            name, _n(z.get("abs_lift")), _ci(z.get("abs_ci")), _n(z.get("rel_lift")), _ci(z.get("rel_ci")),
            _n(z.get("p_value")) or z.get("error", ""), _n(b.get("prob_treatment_beats_control")) or b.get("error", ""),
            _n(b.get("loss_choose_treatment")), _ci(b.get("abs_lift_ci")),
            _ci(cuped.get("adjusted", {}).get("abs_ci")) or cuped.get("error", ""), _n(cuped.get("width_ratio")),
            _n(seq.get("p_value")) or seq.get("error", ""), _n(c.get("clicks", {}).get("p_value")),
            _n(c.get("revenue", {}).get("p_value")), "ship" if d.get("ship") else "no",
        ])
    return rows


def render(result) -> str:
    """The report's HTML; `result` is an `AnalysisResult` (its summary dict and daily rows)."""
    s = result.summary
    control = s.get("control", "control")
    comparisons = s.get("comparisons", {})
    alpha = next((c.get("conversion", {}).get("alpha") for c in comparisons.values() if c.get("conversion", {}).get("alpha")), 0.05)
    plots = []
    if result.daily:
        plots.append(_img("conversion over time", conversion_plot(result.daily, control)))
    posteriors: dict = {}
    for name, c in sorted(comparisons.items()):
        b = c.get("bayes", {})
        if "posterior_control" in b:
            posteriors.setdefault(control, tuple(b["posterior_control"]))
            posteriors[name] = tuple(b["posterior_treatment"])
    if posteriors:
        plots.append(_img("posterior densities", posterior_plot(posteriors)))
    absolute, relative = lift_intervals(comparisons)
    if absolute or relative:
        plots.append(_img("lift with intervals", lift_plot(absolute, relative, 1 - alpha)))
    sequential = sequential_plot(comparisons, alpha)
    if sequential:
        plots.append(_img("sequential p-value", sequential))
    variants = _table(
        ["variant", "users", "multi-variant users", "conversions", "conversion rate", "clicks / user", "revenue / user"],
        [[name, _n(v["users"]), _n(v["multi_variant_users"]), _n(v["conversions"]), _n(v["conversion_rate"]),
          _n(v["clicks_per_user"]), _n(v["revenue_per_user"])]
         for name, v in sorted(s.get("variants", {}).items(), key=lambda kv: (kv[0] != control, kv[0]))],
    )
    compared = _table(
        ["variant", "abs lift", "CI", "rel lift", "CI", "z p-value", "P(beat)", "expected loss", "credible CI (abs)",
         "CUPED CI (abs)", "CUPED width ratio", "mSPRT p-value", "clicks Welch p", "revenue Welch p", "rule"],
        _comparison_rows(comparisons),
    ) if comparisons else f"<p>{html.escape(s.get('note', 'No variant to compare.'))}</p>"
    srm = s.get("srm", {})
    if "skipped" in srm or "error" in srm:
        srm_html = f"<p>{html.escape(srm.get('skipped') or srm.get('error'))}</p>"
    else:
        srm_html = _table(
            ["variant", "observed users", "expected users"],
            [[k, _n(srm["observed"][k]), _n(srm["expected"][k])] for k in srm.get("observed", {})],
        ) + (f"<p>chi2 {_n(srm.get('chi2'))}, p = {_n(srm.get('p_value'))} (flagged below {srm.get('threshold')}): "
             f"<b style='color:{'#c62828' if srm.get('mismatch') else '#2e7d32'}'>"
             f"{'MISMATCH: the split is broken' if srm.get('mismatch') else 'ok'}</b></p>")
    promotion = result.promotion
    acted = f"<p>Registry: {html.escape(promotion.reason)}</p>" if promotion is not None and promotion.reason else ""
    decision = (f"<p style='font-size:1.2em'><b>{'Ship ' + html.escape(result.winner) if result.winner else 'No winner'}</b>: "
                f"{html.escape(result.decision_reason)}</p>{acted}")
    unknown = s.get("unknown_variants") or []
    warn = (f"<p style='color:#c62828'>Exposures name variants not in the config: {html.escape(', '.join(unknown))}</p>"
            if unknown else "")
    title = f"Experiment {result.experiment_id} as of {result.as_of}"
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}"
        "img{margin:6px;max-width:48%;vertical-align:top}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(s.get('kind', ''))} experiment, control "
        f"<b>{html.escape(control)}</b></p>{decision}{warn}"
        f"<h2>Plots</h2>{''.join(plots) or '<p>Nothing to plot.</p>'}"
        f"<h2>Variants</h2>{variants}<h2>Against the control</h2>{compared}"
        f"<h2>Sample-ratio check</h2>{srm_html}</body></html>"
    )


def write_report(config: ClickmlConfig, result) -> str:
    """Write the report beside the Data Docs and log it to an MLflow run; returns where."""
    from pipelines.validate.results import results_root, write_file

    page = render(result).encode("utf-8")
    relative = f"experiments/{result.experiment_id}/{result.as_of.isoformat()}.html"
    where = write_file(config, results_root(config), relative, page)
    _log_to_mlflow(config, result, page, Path(relative).name, where)
    log.info("experiment report: %s", where)
    return where


def _log_to_mlflow(config: ClickmlConfig, result, page: bytes, filename: str, where: str) -> None:
    """One run per look in the configured MLflow experiment: the report, the P(beat) and p-values."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from pipelines.train.errors import TrackingError
    from pipelines.train.tracking import configure

    try:
        configure(config)
        metrics = {}
        for name, c in result.summary.get("comparisons", {}).items():
            for key, value in (("prob_beat", c.get("bayes", {}).get("prob_treatment_beats_control")),
                               ("expected_loss", c.get("bayes", {}).get("loss_choose_treatment")),
                               ("ztest_p_value", c.get("conversion", {}).get("p_value")),
                               ("msprt_p_value", c.get("sequential", {}).get("p_value"))):
                if isinstance(value, (int, float)):
                    metrics[f"{name}.{key}"] = float(value)
        tags = {"clickml.experiment_id": result.experiment_id, "clickml.as_of": result.as_of.isoformat(),
                "clickml.winner": result.winner or ""}
        with tempfile.TemporaryDirectory(prefix="clickml-experiment-") as tmp:
            local = Path(tmp) / filename
            local.write_bytes(page)
            with mlflow.start_run(run_name=f"experiment-{result.experiment_id}-{result.as_of.isoformat()}", tags=tags):
                if metrics:
                    mlflow.log_metrics(metrics)
                mlflow.log_artifact(str(local), "experiment")
    except (MlflowException, OSError, TrackingError) as exc:
        log.warning("experiment report: not logged to MLflow (%s); it is at %s", exc, where)
