"""PNG plots of evaluations, drawn with matplotlib's object API on the Agg canvas (no display, no pyplot
global state, safe in executors and threads). Each function writes one file and returns its path.

`plot_roc`, `plot_pr` and `plot_calibration` accept one evaluation or a mapping name -> evaluation
(e.g. {"train": ..., "test": ...}, or champion vs challenger) drawn on the same axes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pipelines.evaluate.binary import BinaryEvaluation

log = logging.getLogger(__name__)

DPI = 110
Evaluations = BinaryEvaluation | Mapping[str, BinaryEvaluation]


def _named(evaluations: Evaluations) -> dict[str, BinaryEvaluation]:
    if isinstance(evaluations, BinaryEvaluation):
        return {"": evaluations}
    if not evaluations:
        raise ValueError("nothing to plot: no evaluation given")
    return dict(evaluations)


def _label(name: str, text: str) -> str:
    return f"{name}: {text}" if name else text


def _fmt(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4f}"


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=DPI)
    log.debug("wrote %s", path)
    return path


def _figure(title: str, xlabel: str, ylabel: str, size=(6.4, 5.2)):
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def plot_roc(evaluations: Evaluations, path: str | Path, title: str = "ROC curve") -> Path:
    """ROC curve(s), with the exact ROC AUC in the legend and the chance diagonal."""
    fig, ax = _figure(title, "False positive rate", "True positive rate")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance (AUC 0.5)")
    for name, ev in _named(evaluations).items():
        roc = ev.roc_curve
        ax.plot(roc["fpr"], roc["tpr"], linewidth=2, label=_label(name, f"AUC {_fmt(ev.metrics['roc_auc'])}"))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_pr(evaluations: Evaluations, path: str | Path, title: str = "Precision-recall curve") -> Path:
    """Precision-recall step curve(s), average precision in the legend, base rate as the chance line.

    Steps as average precision integrates them: from recall R_{n-1} to R_n, the precision P_n.
    """
    fig, ax = _figure(title, "Recall", "Precision")
    for name, ev in _named(evaluations).items():
        pr = ev.pr_curve
        line = ax.plot(pr["recall"], pr["precision"], drawstyle="steps-pre", linewidth=2,
                       label=_label(name, f"AP {_fmt(ev.metrics['pr_auc'])}"))[0]
        ax.axhline(ev.metrics["base_rate"], linestyle="--", linewidth=1, color=line.get_color(), alpha=0.6,
                   label=_label(name, f"base rate {_fmt(ev.metrics['base_rate'])}"))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="upper right")
    return _save(fig, path)


def plot_calibration(evaluations: Evaluations, path: str | Path, title: str = "Calibration") -> Path:
    """Observed positive rate against mean predicted probability per bin, with the diagonal."""
    fig, ax = _figure(title, "Mean predicted probability", "Observed positive rate")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    for name, ev in _named(evaluations).items():
        cal = ev.calibration
        text = f"Brier {_fmt(ev.metrics['brier_score'])}, ECE {_fmt(ev.metrics['calibration_error'])}"
        ax.plot(cal["mean_predicted"], cal["observed_rate"], marker="o", linewidth=2, label=_label(name, text))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="upper left")
    return _save(fig, path)


def plot_lift(evaluation: BinaryEvaluation, path: str | Path, title: str = "Lift and gain by decile") -> Path:
    """Bars: lift per score decile (1 = highest scores); line: cumulative gain (right axis)."""
    d = evaluation.deciles
    fig, ax = _figure(title, "Score decile (1 = highest scores)", "Lift (response rate / base rate)", size=(7.2, 5.2))
    ax.bar(d["decile"], d["lift"], color="tab:blue", alpha=0.8, label="lift")
    ax.axhline(1.0, linestyle="--", color="grey", linewidth=1, label="no lift")
    ax.set_xticks(range(1, 11))
    gain = ax.twinx()
    gain.plot(d["decile"], d["cumulative_gain"], color="tab:orange", marker="o", linewidth=2, label="cumulative gain")
    gain.plot(d["decile"], d["cumulative_population"], color="grey", linestyle=":", linewidth=1, label="random gain")
    gain.set_ylim(0, 1.05)
    gain.set_ylabel("Cumulative share of positives")
    handles = ax.get_legend_handles_labels()[0] + gain.get_legend_handles_labels()[0]
    fig.legend(handles, [h.get_label() for h in handles], loc="outside lower center", ncols=4)
    return _save(fig, path)


def plot_feature_importance(
    names: Sequence[str], values: Sequence[float], path: str | Path, top: int = 20, title: str = "Feature importance"
) -> Path:
    """Horizontal bars of the `top` features by absolute value (coefficients keep their sign)."""
    if len(names) != len(values):
        raise ValueError(f"{len(names)} feature names but {len(values)} values")
    values = np.asarray(values, dtype=float)
    order = np.argsort(-np.abs(np.nan_to_num(values)), kind="stable")[:top][::-1]
    shown = [str(names[i]) for i in order]
    fig, ax = _figure(title, "Importance", "", size=(7.2, max(2.5, 0.32 * len(shown) + 1.2)))
    colors = ["tab:red" if values[i] < 0 else "tab:blue" for i in order]
    ax.barh(range(len(shown)), values[order], color=colors)
    ax.set_yticks(range(len(shown)), shown)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.grid(True, axis="x", alpha=0.3)
    ax.grid(False, axis="y")
    return _save(fig, path)


def write_plots(evaluation: BinaryEvaluation, out_dir: str | Path, prefix: str = "") -> list[Path]:
    """ROC, PR, lift and calibration PNGs of a binary evaluation in `out_dir` (e.g. `test_roc.png`)."""
    out = Path(out_dir)
    return [
        plot_roc(evaluation, out / f"{prefix}roc.png"),
        plot_pr(evaluation, out / f"{prefix}pr.png"),
        plot_lift(evaluation, out / f"{prefix}lift.png"),
        plot_calibration(evaluation, out / f"{prefix}calibration.png"),
    ]
