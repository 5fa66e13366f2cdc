"""The HTML report of one monitoring run: what a person looks at before trusting an alert.

One self-contained page (plots embedded as PNG): the summary line; the drift table (every
feature and statistic, its value, p-value, status and the threshold that decided it); reference
vs current distributions of the features that warn or alert and of the score; performance over
time (AUC per scored date against the model's test AUC) once labels have matured. It is written
beside the Data Docs (`<validation results root>/monitoring/<job>/<as-of>-v<version>.html`) and
logged to the model version's MLflow run under `monitor/`.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
import tempfile
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pipelines.config import ClickmlConfig
from pipelines.monitor.judge import ALERT, OK, RANK, WARN

log = logging.getLogger(__name__)

MAX_PLOTS = 12
"""Distribution plots per report: the score, then the features that alert, then those that warn."""
COLORS = {OK: "#2e7d32", WARN: "#ef6c00", ALERT: "#c62828"}


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def distribution_plot(feature: str, labels: list[str], reference: list[int], current: list[int], status: str) -> str:
    """Reference vs current share per cell, as a base64 PNG."""
    ref_total, cur_total = max(sum(reference), 1), max(sum(current), 1)
    fig = Figure(figsize=(6.4, 3.2))
    ax = fig.add_subplot()
    x = list(range(len(labels)))
    ax.bar([i - 0.2 for i in x], [r / ref_total for r in reference], width=0.4, label="reference (training)", color="#90a4ae")
    ax.bar([i + 0.2 for i in x], [c / cur_total for c in current], width=0.4, label="current", color=COLORS[status])
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("share")
    ax.set_title(f"{feature} ({status})", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def performance_plot(points: list[tuple[str, float, float | None]]) -> str:
    """AUC per as-of date with the test AUC, as a base64 PNG."""
    fig = Figure(figsize=(6.4, 3.2))
    ax = fig.add_subplot()
    dates = [p[0] for p in points]
    ax.plot(dates, [p[1] for p in points], marker="o", label="AUC on matured labels")
    tests = [p[2] for p in points]
    if any(t is not None for t in tests):
        ax.plot(dates, [math.nan if t is None else t for t in tests], linestyle="--", label="test AUC of the version")
    ax.set_ylabel("ROC AUC")
    ax.set_title("Performance over time", fontsize=10)
    ax.tick_params(axis="x", rotation=45, labelsize=7)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def _number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.4g}"


def render(result, cells: dict, history: list[dict]) -> str:
    """The report's HTML. `result` is a MonitorResult, `cells` the per-feature PSI cells from
    `compare`, `history` the job's `monitor.performance` rows (bounded: dates x metrics)."""
    statuses = result.statuses
    rows = "".join(
        f"<tr><td>{html.escape(j.stat.feature)}</td><td>{j.stat.kind}</td><td>{j.stat.statistic}</td>"
        f"<td>{_number(j.stat.value)}</td><td>{_number(j.stat.p_value)}</td>"
        f"<td style='color:{COLORS[j.status]};font-weight:bold'>{j.status}</td><td>{html.escape(j.reason)}</td></tr>"
        for j in sorted(result.judged, key=lambda j: (-RANK[j.status], j.stat.feature, j.stat.statistic))
    )
    score = [f for f, s in statuses.items() if any(j.stat.kind == "score" and j.stat.feature == f for j in result.judged)]
    flagged = sorted((f for f, s in statuses.items() if s != OK and f not in score), key=lambda f: (-RANK[statuses[f]], f))
    plots = "".join(
        f"<img alt='{html.escape(f)}' src='data:image/png;base64,{distribution_plot(f, *cells[f], statuses[f])}'>"
        for f in (score + flagged)[:MAX_PLOTS] if f in cells
    )
    auc = sorted((r for r in history if r["metric"] == "roc_auc"), key=lambda r: str(r["as_of_date"]))
    performance = (
        f"<img alt='performance' src='data:image/png;base64,"
        f"{performance_plot([(str(r['as_of_date']), r['value'], r['test_value']) for r in auc])}'>"
        if auc else "<p>No scored date has matured labels yet.</p>"
    )
    title = f"Monitoring {result.job} as of {result.as_of} ({result.model_name} v{result.model_version})"
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}"
        "img{margin:6px;max-width:48%}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(result.report())}</p>"
        f"<h2>Distributions (reference vs current)</h2>{plots or '<p>No feature warns or alerts.</p>'}"
        f"<h2>Performance over time</h2>{performance}"
        "<h2>Drift statistics</h2><table><tr><th>feature</th><th>kind</th><th>statistic</th><th>value</th>"
        f"<th>p-value</th><th>status</th><th>why</th></tr>{rows}</table></body></html>"
    )


def write_report(config: ClickmlConfig, result, cells: dict, history: list[dict], run_id: str | None) -> str:
    """Write the report beside the Data Docs and log it to the model version's run; returns where."""
    from pipelines.validate.results import results_root, write_file

    page = render(result, cells, history).encode("utf-8")
    relative = f"monitoring/{result.job}/{result.as_of.isoformat()}-v{result.model_version}.html"
    where = write_file(config, results_root(config), relative, page)
    if run_id:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        with tempfile.TemporaryDirectory(prefix="clickml-monitor-") as tmp:
            local = Path(tmp) / Path(relative).name
            local.write_bytes(page)
            try:
                MlflowClient().log_artifact(run_id, str(local), "monitor")
            except (MlflowException, OSError) as exc:
                log.warning("monitor report: not logged to run %s (%s); it is at %s", run_id, exc, where)
    log.info("monitor report: %s", where)
    return where
