"""The model server's counters and latency histograms, in Prometheus' text exposition format.

    clickml_requests_total{endpoint, experiment, variant, status}   counter
    clickml_request_errors_total{endpoint, experiment, variant}     counter (status >= 500)
    clickml_request_latency_seconds{endpoint, variant}              histogram
    clickml_feature_fallbacks_total{job, kind}                      counter (read from the store)
    clickml_model_info{experiment, variant, model, version}         gauge (1 per loaded model)
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    def escape(value: str) -> str:
        return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    inner = ",".join(f'{k}="{escape(v)}"' for k, v in pairs)
    return "{" + inner + "}" if inner else ""


def _number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class ServerMetrics:
    """Thread-safe counters of one server process."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS):
        self.buckets = buckets
        self._lock = threading.Lock()
        self.requests: dict[tuple, int] = defaultdict(int)
        self.errors: dict[tuple, int] = defaultdict(int)
        self._hist: dict[tuple, list[int]] = {}
        self._sum: dict[tuple, float] = defaultdict(float)

    def observe(self, endpoint: str, experiment: str, variant: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(endpoint, experiment, variant, str(status))] += 1
            if status >= 500:
                self.errors[(endpoint, experiment, variant)] += 1
            key = (endpoint, variant)
            counts = self._hist.setdefault(key, [0] * (len(self.buckets) + 1))
            counts[bisect.bisect_left(self.buckets, seconds)] += 1
            self._sum[key] += seconds

    def render(self, fallbacks: Mapping[str, Mapping[str, int]] | None = None,
               models: Iterable[tuple[str, str, str, str]] = ()) -> str:
        """The exposition text; `fallbacks` = {job: {kind: count}}, `models` = (experiment, variant,
        model, version) of each loaded model."""
        out: list[str] = []
        with self._lock:
            out += ["# HELP clickml_requests_total Requests answered, by endpoint, experiment, variant and status.",
                    "# TYPE clickml_requests_total counter"]
            for (endpoint, experiment, variant, status), n in sorted(self.requests.items()):
                labels = _labels([("endpoint", endpoint), ("experiment", experiment), ("variant", variant), ("status", status)])
                out.append(f"clickml_requests_total{labels} {n}")
            out += ["# HELP clickml_request_errors_total Requests that failed with a server error (5xx).",
                    "# TYPE clickml_request_errors_total counter"]
            for (endpoint, experiment, variant), n in sorted(self.errors.items()):
                labels = _labels([("endpoint", endpoint), ("experiment", experiment), ("variant", variant)])
                out.append(f"clickml_request_errors_total{labels} {n}")
            out += ["# HELP clickml_request_latency_seconds Time to answer a request.",
                    "# TYPE clickml_request_latency_seconds histogram"]
            for (endpoint, variant), counts in sorted(self._hist.items()):
                base = [("endpoint", endpoint), ("variant", variant)]
                running = 0
                for bound, n in zip(self.buckets, counts):
                    running += n
                    out.append(f"clickml_request_latency_seconds_bucket{_labels(base + [('le', _number(bound))])} {running}")
                running += counts[-1]
                out.append(f"clickml_request_latency_seconds_bucket{_labels(base + [('le', '+Inf')])} {running}")
                out.append(f"clickml_request_latency_seconds_sum{_labels(base)} {self._sum[(endpoint, variant)]!r}")
                out.append(f"clickml_request_latency_seconds_count{_labels(base)} {running}")
        out += ["# HELP clickml_feature_fallbacks_total Online feature lookups that fell back to defaults.",
                "# TYPE clickml_feature_fallbacks_total counter"]
        for job, kinds in sorted((fallbacks or {}).items()):
            for kind, n in sorted(kinds.items()):
                out.append(f"clickml_feature_fallbacks_total{_labels([('job', job), ('kind', kind)])} {n}")
        out += ["# HELP clickml_model_info The model version each variant serves.", "# TYPE clickml_model_info gauge"]
        for experiment, variant, model, version in sorted(models):
            labels = _labels([("experiment", experiment), ("variant", variant), ("model", model), ("version", version)])
            out.append(f"clickml_model_info{labels} 1")
        return "\n".join(out) + "\n"
