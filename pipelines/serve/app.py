"""The model server (`clickml serve`): online features from Redis, models in-process, experiments.

    POST /score                      {"user_id": "u1", "experiment": "propensity_ab"} -> P(buy) + variant
    GET  /recommendations/{user_id}  the recommender's materialized top-k (?experiment=: each variant's version)
    GET  /health                     200 when Redis answers and every variant has a model, else 503
    GET  /metrics                    Prometheus text (requests, latency, errors per variant, fallbacks)
    POST /admin/reload               re-resolve the aliases now (also every `reload_seconds`)

Every variant of every configured experiment is loaded at start: its alias (or version) resolved
once in the MLflow registry, its model loaded in-process (`pipelines.serve.inprocess`; no
SparkSession per request). When an alias moves, the new version is loaded first and then swapped
in, so no request sees a half-loaded model. Each decision is logged as an exposure event
(`pipelines.serve.exposures`). An unknown user is scored on the feature defaults (counted), never
a 500; a bad request is a 4xx with a reason.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from pipelines.config import ClickmlConfig
from pipelines.config.serving import ExperimentSpec
from pipelines.serve.exposures import Exposure, ExposureLog, new_request_id
from pipelines.serve.metrics import CONTENT_TYPE, ServerMetrics
from pipelines.serve.online import OnlineStore, OnlineStoreError
from pipelines.serve.routing import Router, read_bandit_weights

log = logging.getLogger(__name__)

DEFAULT_RELOAD_SECONDS = 30.0


class ServingError(RuntimeError):
    """The server cannot start or serve as configured; the message names the experiment / model."""


@dataclass(frozen=True)
class LoadedVariant:
    """The model one variant serves."""

    experiment_id: str
    variant: str
    model_name: str
    reference: str
    """What the config asks for: `models:/<name>@<alias>` or `models:/<name>/<version>`."""
    version: str
    run_id: str | None
    threshold: float
    model: object
    """Has `predict_proba(rows) -> np.ndarray` of P(1); None for a recommender, whose variants
    serve the top-k `clickml materialize` wrote for their version."""


def _resolve_default(model_name: str, alias: str | None, version: int | None):
    from pipelines.score.stage import resolve_model

    return resolve_model(model_name, alias, version)


def _load_default(uri: str):
    from pipelines.serve.inprocess import load_inprocess

    return load_inprocess(uri)


def _threshold_default(ref) -> float:
    from pipelines.score.stage import run_metrics, threshold_of

    return threshold_of(run_metrics(ref.run_id), ref.tags)[0]


class ModelSet:
    """The loaded model of every (experiment, variant); `reload` swaps those whose alias moved."""

    def __init__(self, config: ClickmlConfig, resolver: Callable = _resolve_default, loader: Callable = _load_default,
                 threshold: Callable = _threshold_default):
        self.config, self.resolver, self.loader, self.threshold = config, resolver, loader, threshold
        self._lock = threading.Lock()
        self._models: dict[tuple[str, str], LoadedVariant] = {}

    def model_name(self, spec: ExperimentSpec) -> str:
        return self.config.training.jobs[spec.job].registry.name

    def _load(self, experiment_id: str, variant: str, spec: ExperimentSpec, known: LoadedVariant | None) -> LoadedVariant:
        arm = spec.variants[variant]
        name = self.model_name(spec)
        reference = arm.model_reference(name)
        try:
            ref = self.resolver(name, arm.alias, arm.version)
        except Exception as exc:  # noqa: BLE001 - any registry failure: name what was asked
            raise ServingError(f"experiment {experiment_id}, variant {variant}: cannot resolve {reference}: {exc}") from exc
        if known is not None and known.version == str(ref.version):
            return known
        if self.config.training.jobs[spec.job].task == "recommendation":
            # No model in-process: the variant serves its version's materialized top-k (ALS has no
            # per-request form here; scoring a user against every item belongs to batch scoring).
            log.info("serving %s/%s: %s v%s (materialized top-k)", experiment_id, variant, name, ref.version)
            return LoadedVariant(experiment_id, variant, name, reference, str(ref.version), ref.run_id, float("nan"), None)
        try:
            model = self.loader(f"models:/{name}/{ref.version}")
        except Exception as exc:  # noqa: BLE001
            raise ServingError(f"experiment {experiment_id}, variant {variant}: cannot load {name} v{ref.version} "
                               f"({reference}) in-process: {exc}") from exc
        loaded = LoadedVariant(experiment_id, variant, name, reference, str(ref.version), ref.run_id,
                               float(self.threshold(ref)), model)
        log.info("serving %s/%s: %s v%s (threshold %.4g)", experiment_id, variant, name, loaded.version, loaded.threshold)
        return loaded

    def load_all(self) -> None:
        models = {}
        for experiment_id, spec in self.config.experiments.items():
            for variant in spec.variants:
                models[(experiment_id, variant)] = self._load(experiment_id, variant, spec, None)
        with self._lock:
            self._models = models

    def reload(self) -> list[str]:
        """Re-resolve every alias; load what moved, then swap it in. Returns what changed. A variant
        that fails to reload keeps serving its current model (logged)."""
        with self._lock:
            current = dict(self._models)
        changed, models = [], dict(current)
        for (experiment_id, variant), known in current.items():
            spec = self.config.experiments[experiment_id]
            try:
                fresh = self._load(experiment_id, variant, spec, known)
            except ServingError as exc:
                log.error("reload: %s; keeping v%s", exc, known.version)
                continue
            if fresh is not known:
                models[(experiment_id, variant)] = fresh
                changed.append(f"{experiment_id}/{variant}: v{known.version} -> v{fresh.version}")
        with self._lock:
            self._models = models
        for line in changed:
            log.info("reload: %s", line)
        return changed

    def get(self, experiment_id: str, variant: str) -> LoadedVariant:
        with self._lock:
            return self._models[(experiment_id, variant)]

    def all(self) -> list[LoadedVariant]:
        with self._lock:
            return list(self._models.values())


class ScoreRequest(BaseModel):
    """Body of POST /score."""

    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=256)
    experiment: str | None = None
    """Which experiment decides the variant; may be left out when exactly one experiment is configured."""
    request_id: str | None = Field(default=None, max_length=128)
    session_id: str | None = Field(default=None, max_length=256)


class ServerState:
    """What the endpoints share: config, store, routers, models, exposure log, metrics."""

    def __init__(self, config: ClickmlConfig, store: OnlineStore, models: ModelSet, exposures: ExposureLog | None,
                 reload_seconds: float = DEFAULT_RELOAD_SECONDS):
        self.config, self.store, self.models, self.exposures = config, store, models, exposures
        self.reload_seconds = reload_seconds
        self.metrics = ServerMetrics()
        self.routers = {eid: Router(eid, spec) for eid, spec in config.experiments.items()}
        self.recommendation_jobs = [name for name, spec in config.training.jobs.items() if spec.task == "recommendation"]
        self.scoring_experiments = [eid for eid, spec in config.experiments.items() if spec.job not in self.recommendation_jobs]
        self._bandit_checked: dict[str, float] = {}
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # -- background work -----------------------------------------------------------------
    def refresh_bandits(self, force: bool = False) -> None:
        now = time.monotonic()
        for eid, router in self.routers.items():
            spec = router.spec
            if spec.kind != "bandit":
                continue
            if not force and now - self._bandit_checked.get(eid, -1e18) < spec.bandit.refresh_minutes * 60:
                continue
            self._bandit_checked[eid] = now
            try:
                weights = read_bandit_weights(self.store.client, self.store.prefix, eid)
                if weights is not None and weights != router.weights:
                    router.set_weights(weights)
                    log.info("bandit %s: now %s", eid, weights)
            except Exception as exc:  # noqa: BLE001 - keep serving on the weights we have
                log.error("bandit %s: weights not refreshed: %s", eid, exc)

    def _tick(self) -> None:
        last_reload = time.monotonic()
        while not self._stop.wait(1.0):
            if self.exposures is not None:
                self.exposures.rotate()
            self.refresh_bandits()
            if time.monotonic() - last_reload >= self.reload_seconds:
                last_reload = time.monotonic()
                try:
                    self.models.reload()
                except Exception as exc:  # noqa: BLE001
                    log.error("reload failed: %s", exc)

    def start(self) -> None:
        self.refresh_bandits(force=True)
        self._ticker = threading.Thread(target=self._tick, name="clickml-serve-ticker", daemon=True)
        self._ticker.start()

    def stop(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
        if self.exposures is not None:
            self.exposures.close()

    # -- requests --------------------------------------------------------------------------
    def router(self, experiment: str) -> Router:
        """The router of a named experiment; 404 listing the configured ones."""
        if experiment not in self.routers:
            raise HTTPException(404, f"unknown experiment {experiment!r}; configured: {', '.join(self.routers) or 'none'}")
        return self.routers[experiment]

    def log_exposures(self, experiment: str, decision, user_id: str, request_id: str, version: str,
                      shadows: list[dict], session_id: str | None) -> None:
        """One exposure for the answer and one per shadow (request id `<id>.<variant>`)."""
        if self.exposures is None:
            return
        now = dt.datetime.now(dt.timezone.utc)
        rows = [Exposure(experiment, decision.variant, user_id, request_id, version, now, session_id)]
        rows += [Exposure(experiment, s["variant"], user_id, f"{request_id}.{s['variant']}", s["model_version"], now,
                          session_id) for s in shadows]
        self.exposures.write(rows)

    def experiment_for(self, asked: str | None) -> str:
        """The propensity experiment of a /score request (the only one when none is named)."""
        scoring = self.scoring_experiments
        if asked is not None:
            job = self.router(asked).spec.job  # 404 for an unknown experiment
            if asked not in scoring:
                raise HTTPException(400, f"experiment {asked} is on recommendation job {job}: "
                                         f"GET /recommendations/{{user_id}}?experiment={asked}")
            return asked
        if len(scoring) == 1:
            return scoring[0]
        raise HTTPException(400, f"name the experiment: one of {', '.join(scoring) or 'none (configure experiments:)'}")

    def recommend(self, user_id: str, job: str | None, k: int, experiment: str | None = None,
                  request_id: str | None = None, session_id: str | None = None) -> dict:
        """A user's top-k: by the version of the variant `experiment` assigns (exposure logged), or
        without one by the job's default version. An unknown user gets an empty list (counted)."""
        jobs = self.recommendation_jobs
        spec = None
        if experiment is not None:
            spec = self.router(experiment).spec
            if spec.job not in jobs:
                raise HTTPException(400, f"experiment {experiment} is on job {spec.job}, not a recommendation job: POST /score")
            if job is not None and job != spec.job:
                raise HTTPException(400, f"experiment {experiment} is on job {spec.job}, not {job}")
            job = spec.job
        job = job or (jobs[0] if len(jobs) == 1 else None)
        if job is None or job not in jobs:
            raise HTTPException(400, f"name the recommendation job (?job=): one of {', '.join(jobs) or 'none'}")
        if not 1 <= k <= 1000:
            raise HTTPException(422, f"k must be between 1 and 1000, got {k}")
        if spec is None:
            items = self.store.get_recommendations(job, user_id)
            meta = self.store.meta(job) or {}
            return {"user_id": user_id, "job": job, "variant": "materialized" if items else "default",
                    "model_version": meta.get("model_version"),
                    "as_of_date": str(meta["as_of_date"]) if meta.get("as_of_date") else None,
                    "items": [{"product_id": p, "score": s} for p, s in items[:k]]}
        decision = self.routers[experiment].decide(user_id)
        served = self.models.get(experiment, decision.variant)
        items = self.store.get_recommendations(job, user_id, served.version)
        meta = self.store.meta(job, model_version=served.version) or {}
        request_id = request_id or new_request_id()
        shadows = []
        for name in decision.shadows:
            shadow = self.models.get(experiment, name)
            try:
                top = self.store.get_recommendations(job, user_id, shadow.version)
            except OnlineStoreError as exc:  # a failing shadow never fails the answer
                log.error("shadow %s/%s v%s failed for request %s: %s", experiment, name, shadow.version, request_id, exc)
                continue
            shadows.append({"variant": name, "model_version": shadow.version, "items": [p for p, _ in top[:k]]})
        self.log_exposures(experiment, decision, user_id, request_id, served.version, shadows, session_id)
        return {"request_id": request_id, "user_id": user_id, "job": job, "experiment": experiment,
                "variant": decision.variant, "model": {"name": served.model_name, "version": served.version},
                "model_version": served.version, "source": "materialized" if items else "default",
                "as_of_date": str(meta["as_of_date"]) if meta.get("as_of_date") else None,
                "items": [{"product_id": p, "score": s} for p, s in items[:k]], "shadow": shadows}

    def score(self, body: ScoreRequest) -> dict:
        eid = self.experiment_for(body.experiment)
        router = self.routers[eid]
        job = router.spec.job
        decision = router.decide(body.user_id)
        features, as_of = self.store.get_user_features(job, body.user_id)
        if features is None:
            raise HTTPException(503, f"no online features for job {job}: run `clickml materialize {job}` first")
        request_id = body.request_id or new_request_id()
        served = self.models.get(eid, decision.variant)
        score = float(np.asarray(served.model.predict_proba([features]))[0])
        shadows = []
        for name in decision.shadows:
            shadow = self.models.get(eid, name)
            try:
                shadows.append({"variant": name, "model_version": shadow.version,
                                "score": float(np.asarray(shadow.model.predict_proba([features]))[0])})
            except Exception as exc:  # noqa: BLE001 - a failing shadow never fails the answer
                log.error("shadow %s/%s v%s failed for request %s: %s", eid, name, shadow.version, request_id, exc)
        self.log_exposures(eid, decision, body.user_id, request_id, served.version, shadows, body.session_id)
        return {
            "request_id": request_id, "experiment": eid, "variant": decision.variant, "user_id": body.user_id,
            "model": {"name": served.model_name, "version": served.version},
            "score": score, "decision": score >= served.threshold, "threshold": served.threshold,
            "features": "online" if as_of is not None else "default",
            "features_as_of": as_of.isoformat() if as_of else None,
            "shadow": shadows,
        }


def create_app(state: ServerState) -> FastAPI:
    """The ASGI app over a prepared `ServerState` (models loaded, store connected)."""

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        state.start()
        try:
            yield
        finally:
            state.stop()

    app = FastAPI(title="clickml model server", lifespan=lifespan)
    app.state.serving = state

    def observe(endpoint: str, experiment: str, variant: str, status: int, started: float) -> None:
        state.metrics.observe(endpoint, experiment, variant, status, time.perf_counter() - started)

    @app.post("/score")
    def score(body: ScoreRequest):
        started = time.perf_counter()
        experiment, variant = body.experiment or "", ""
        try:
            answer = state.score(body)
        except HTTPException as exc:
            observe("score", experiment, variant, exc.status_code, started)
            raise
        except OnlineStoreError as exc:
            observe("score", experiment, variant, 503, started)
            raise HTTPException(503, str(exc)) from exc
        except Exception:
            observe("score", experiment, variant, 500, started)
            log.exception("score failed for user %s", body.user_id)
            raise
        observe("score", answer["experiment"], answer["variant"], 200, started)
        return answer

    @app.get("/recommendations/{user_id}")
    def recommendations(user_id: str, job: str | None = None, k: int = 10, experiment: str | None = None,
                        request_id: str | None = None, session_id: str | None = None):
        started = time.perf_counter()
        if (request_id and len(request_id) > 128) or (session_id and len(session_id) > 256):
            observe("recommendations", experiment or "", "", 422, started)
            raise HTTPException(422, "request_id is at most 128 characters, session_id at most 256")
        try:
            answer = state.recommend(user_id, job, k, experiment, request_id, session_id)
        except HTTPException as exc:
            observe("recommendations", experiment or "", "", exc.status_code, started)
            raise
        except OnlineStoreError as exc:
            observe("recommendations", experiment or "", "", 503, started)
            raise HTTPException(503, str(exc)) from exc
        observe("recommendations", answer.get("experiment") or "", answer["variant"], 200, started)
        return answer

    @app.get("/health")
    def health():
        redis_ok = state.store.ping()
        models, unmaterialized = [], []
        for m in state.models.all():
            entry = {"experiment": m.experiment_id, "variant": m.variant, "model": m.model_name, "version": m.version}
            if m.model is None:  # a recommender variant: its version's top-k must be in the store
                job = state.config.experiments[m.experiment_id].job
                entry["materialized"] = False
                if redis_ok:
                    with contextlib.suppress(OnlineStoreError):
                        entry["materialized"] = state.store.meta(job, model_version=m.version) is not None
                if not entry["materialized"]:
                    unmaterialized.append(f"{job} v{m.version}")
            models.append(entry)
        ok = (redis_ok and not unmaterialized
              and len(models) == sum(len(s.variants) for s in state.config.experiments.values()))
        body = {"status": "ok" if ok else "degraded", "redis": redis_ok, "models": models}
        if unmaterialized:
            body["not_materialized"] = sorted(set(unmaterialized))  # clickml materialize JOB --experiment E
        return JSONResponse(body,
                            status_code=200 if ok else 503)

    @app.get("/metrics")
    def metrics():
        fallbacks = {}
        for spec in state.config.experiments.values():
            with contextlib.suppress(OnlineStoreError):
                fallbacks[spec.job] = state.store.fallbacks(spec.job)
        models = [(m.experiment_id, m.variant, m.model_name, m.version) for m in state.models.all()]
        return PlainTextResponse(state.metrics.render(fallbacks, models), media_type=CONTENT_TYPE)

    @app.post("/admin/reload")
    def reload():
        return {"changed": state.models.reload()}

    @app.exception_handler(ServingError)
    async def serving_error(_request: Request, exc: ServingError):
        return JSONResponse({"detail": str(exc)}, status_code=503)

    return app


def build_state(config: ClickmlConfig, reload_seconds: float = DEFAULT_RELOAD_SECONDS, store: OnlineStore | None = None,
                models: ModelSet | None = None, exposures: ExposureLog | None = None) -> ServerState:
    """Connect the store, load every variant's model and open the exposure log (fails with a clear
    error when no experiment is configured or a model cannot be loaded)."""
    if not config.experiments:
        raise ServingError("no experiments configured: add an `experiments:` section (see docs/serving.md)")
    store = store or OnlineStore(config.serving)
    if models is None:
        from pipelines.train.tracking import configure

        configure(config)  # the registry the variants are resolved in
        models = ModelSet(config)
        models.load_all()
    exposures = exposures if exposures is not None else ExposureLog.for_source(config)
    return ServerState(config, store, models, exposures, reload_seconds)


def run(config: ClickmlConfig, host: str | None = None, port: int | None = None,
        reload_seconds: float = DEFAULT_RELOAD_SECONDS, access_log: bool = True) -> None:
    """`clickml serve`: load everything, then answer on host:port until stopped (SIGTERM/SIGINT).
    `access_log=False` drops uvicorn's line per request (the Prometheus metrics still count them)."""
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, except that a SIGTERM / SIGINT after the graceful shutdown (open requests
        answered, exposures published) ends the process with 0: uvicorn re-raises the signal."""

        @contextlib.contextmanager
        def capture_signals(self):
            with super().capture_signals():
                try:
                    yield
                finally:
                    if self._captured_signals:
                        log.info("clickml serve: stopped by signal %s", ", ".join(map(str, self._captured_signals)))
                    self._captured_signals.clear()

    state = build_state(config, reload_seconds)
    host, port = host or config.serving.host, port or config.serving.port
    log.info("clickml serve on http://%s:%d (%d experiment(s))", host, port, len(state.routers))
    Server(uvicorn.Config(create_app(state), host=host, port=port, log_level="info", access_log=access_log)).run()
