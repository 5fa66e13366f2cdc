"""Throughput and quality benchmark of the deep tabular model (a report, not a test).

    .venv/bin/python benchmarks/deep_scaling.py                       # 200,000 rows, CPU, both backends
    .venv/bin/python benchmarks/deep_scaling.py --rows 50000 --backends torch_distributor
    .venv/bin/python benchmarks/deep_scaling.py --rows 2000000 --gpu  # on a GPU machine
    .venv/bin/python benchmarks/deep_scaling.py --rows 2000000 --loop-only  # GPU, no Spark or JVM needed

CPU: training samples/s of the distributed estimator with 1 and 2 processes, per backend
(TorchDistributor, Horovod), on the same generated table (Parquet staged once by Spark). The
figure is the training loop's throughput as the workers measure it (rows per second of epoch
time, all processes together), plus the wall time of `fit` (process start-up, staging and
validation included).

GPU (when torch sees a CUDA device, or with --gpu): samples/s per GPU of the distributed path
(1 process, TorchDistributor, mixed precision) against a single-process PyTorch loop on the same
GPU and data (tensors already on the device, same network and batch size); target >= 0.9x. And
the deep model's test AUC against Spark MLlib's GBT on the same training set. Without a GPU the
section says so and is skipped.

--loop-only (GPU): the same per-GPU comparison without Spark, for a GPU host with no JVM: the
training rows are written as Parquet shards with pyarrow and the TorchDistributor worker entry
(`training.torch_distributor_main`, NCCL) runs in one process started as torchrun would start it.
It measures the worker's loop (shard reading, batching, the step) against the plain loop; Spark's
staging and process launch are not in it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd


def generate(rows: int, seed: int) -> pd.DataFrame:
    """A learnable tabular binary problem: 8 numeric and 3 categorical columns, ~30% positives."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(rows, 8))
    device = rng.choice(["web", "app", "tv", "tablet"], size=rows)
    country = rng.choice([f"c{i}" for i in range(40)], size=rows)
    category = rng.choice([f"k{i}" for i in range(200)], size=rows)
    effect = {f"c{i}": e for i, e in enumerate(rng.normal(scale=0.5, size=40))}
    k_effect = {f"k{i}": e for i, e in enumerate(rng.normal(scale=0.7, size=200))}
    logit = (numeric[:, 0] * 1.2 - numeric[:, 1] + 0.8 * numeric[:, 2] * numeric[:, 3] + 0.5 * np.sin(3 * numeric[:, 4])
             + (device == "app") * 0.8 + pd.Series(country).map(effect).to_numpy()
             + pd.Series(category).map(k_effect).to_numpy() - 1.0)
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    frame = pd.DataFrame(numeric, columns=[f"n{i}" for i in range(8)])
    frame["device"], frame["country"], frame["category"], frame["label"] = device, country, category, label
    return frame


def _estimator(backend: str, processes: int, args, checkpoints: str, use_gpu: str = "false"):
    from pipelines.deep import DeepTabularClassifier

    return DeepTabularClassifier(
        labelCol="label", maxIter=args.epochs, batchSize=args.batch_size, stepSize=0.003, hiddenLayers=[64, 32],
        numProcesses=processes, backend=backend, checkpointDir=checkpoints, patience=0, timeout=3000.0,
        useGpu=use_gpu, shuffleBufferSize=50_000, threadsPerProcess=args.threads,
    )


def cpu_section(spark, train, args, workdir: Path) -> list[dict]:
    rows = []
    for backend in args.backends:
        if backend == "horovod":
            try:
                import horovod.torch  # noqa: F401
            except ImportError as exc:
                print(f"horovod: not installed ({exc}); run `make horovod`")
                continue
        for processes in (1, 2):
            started = time.time()
            model = _estimator(backend, processes, args, str(workdir / "ckpt")).fit(train)
            wall = time.time() - started
            row = {"backend": backend, "processes": processes, "samples_per_s": model.state.samples_per_second,
                   "per_process": model.state.samples_per_second / processes, "fit_wall_s": wall,
                   "val_auc": model.history[-1].get("val_auc")}
            rows.append(row)
            print(f"  {backend:<18} {processes} process(es): {row['samples_per_s']:>10,.0f} samples/s "
                  f"({row['per_process']:,.0f} per process), fit {wall:6.1f} s, val AUC {row['val_auc']:.4f}", flush=True)
    return rows


def plain_gpu_loop(frame: pd.DataFrame, model_like, args) -> float:
    """Samples/s of a single-process PyTorch loop on one GPU, data already on the device."""
    import torch

    from pipelines.deep.network import TabularNet

    device = torch.device("cuda", 0)
    state = model_like.state
    numeric, categorical = state.features.encode(frame)
    x_num = torch.from_numpy(numeric).to(device)
    x_cat = torch.from_numpy(categorical).to(device)
    y = torch.from_numpy(frame["label"].to_numpy(dtype=np.float32)).to(device)
    net = TabularNet(state.net).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=0.003)
    scaler = torch.amp.GradScaler("cuda")
    n, batch = len(frame), args.batch_size
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(args.epochs):
        order = torch.randperm(n, device=device)
        for start in range(0, n - batch + 1, batch):
            index = order[start:start + batch]
            optimizer.zero_grad()
            with torch.autocast("cuda", dtype=torch.float16):
                out = net(x_num[index], x_cat[index])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out.float(), y[index])
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
    torch.cuda.synchronize()
    return (n // batch) * batch * args.epochs / (time.perf_counter() - started)


def _worker(task, port: int, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1", LOCAL_RANK="0",
                      LOCAL_WORLD_SIZE="1")
    from pipelines.deep.training import torch_distributor_main

    out = torch_distributor_main(task)
    results.put((out.samples_per_second, out.device, out.history[-1].get("val_auc")))


def loop_only_section(train_pd: pd.DataFrame, test_pd: pd.DataFrame, args, workdir: Path) -> dict:
    """The worker's training loop on one GPU (no Spark) against the plain single-process loop."""
    import multiprocessing
    import socket
    from types import SimpleNamespace

    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    from pipelines.deep.features import FeatureSchema
    from pipelines.deep.network import NetConfig
    from pipelines.deep.shards import folder_source
    from pipelines.deep.store import CheckpointStore, Folder
    from pipelines.deep.training import TrainTask

    if not torch.cuda.is_available():
        print(f"  no GPU available (torch {torch.__version__}, CUDA build {torch.version.cuda}): loop-only section not run")
        return {"gpu": None}
    numeric = [f"n{i}" for i in range(8)]
    categorical = ["device", "country", "category"]
    for name, frame, files in (("train", train_pd, 8), ("validation", test_pd, 1)):
        folder = workdir / name
        folder.mkdir(parents=True, exist_ok=True)
        for i, part in enumerate(np.array_split(np.arange(len(frame)), files)):
            pq.write_table(pa.Table.from_pandas(frame.iloc[part], preserve_index=False), folder / f"part-{i:03d}.parquet")
    features = FeatureSchema(tuple(numeric), tuple(float(train_pd[c].mean()) for c in numeric),
                             tuple(float(train_pd[c].std()) for c in numeric), tuple(categorical),
                             tuple(tuple(sorted(train_pd[c].unique())) for c in categorical))
    net = NetConfig(len(numeric), features.cardinalities, hidden=(64, 32))
    task = TrainTask(task="binary", features=features, net=net, label="label", weight=None,
                     train=folder_source(Folder(str(workdir / "train"))),
                     validation=folder_source(Folder(str(workdir / "validation"))),
                     store=CheckpointStore(str(workdir / "ckpt-loop")), batch_size=args.batch_size,
                     max_epochs=args.epochs, learning_rate=0.003, shuffle_buffer=50_000, use_gpu=True,
                     mixed_precision=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_worker, args=(task, port, results))
    process.start()
    try:
        worker, device, val_auc = results.get(timeout=3000)
        process.join(60)
    finally:
        if process.is_alive():
            process.kill()
    plain = plain_gpu_loop(train_pd, SimpleNamespace(state=SimpleNamespace(features=features, net=net)), args)
    name = torch.cuda.get_device_name(0)
    ratio = worker / plain
    print(f"  GPU {name}: worker loop {worker:,.0f} samples/s vs single-process loop {plain:,.0f}: {ratio:.2f}x "
          f"(target >= 0.9)  device {device}, val AUC {val_auc:.4f}")
    return {"gpu": name, "worker_samples_per_s": worker, "plain_samples_per_s": plain, "ratio": ratio,
            "val_auc": val_auc}


def gpu_section(spark, train, train_pd, test, args, workdir: Path) -> dict:
    import torch

    if not torch.cuda.is_available():
        print(f"  no GPU available (torch {torch.__version__}, CUDA build {torch.version.cuda}): GPU section not run")
        return {"gpu": None}
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import GBTClassifier
    from pyspark.ml.evaluation import BinaryClassificationEvaluator

    from pipelines.train.preprocess import FeatureColumns, preprocessing_stages

    name = torch.cuda.get_device_name(0)
    model = _estimator("torch_distributor", 1, args, str(workdir / "ckpt-gpu"), use_gpu="true").fit(train)
    distributed = model.state.samples_per_second
    plain = plain_gpu_loop(train_pd, model, args)
    evaluator = BinaryClassificationEvaluator(labelCol="label", rawPredictionCol="rawPrediction")
    deep_auc = evaluator.evaluate(model.transform(test))
    columns = FeatureColumns(tuple(f"n{i}" for i in range(8)), ("device", "country", "category"))
    gbt = Pipeline(stages=[*preprocessing_stages(columns, one_hot=False, scale=False),
                           GBTClassifier(labelCol="label", maxIter=40, maxDepth=5, maxBins=256, seed=1)])
    gbt_model = gbt.fit(train.withColumn("label", train["label"].cast("double")))
    gbt_auc = evaluator.evaluate(gbt_model.transform(test.withColumn("label", test["label"].cast("double"))))
    ratio = distributed / plain
    print(f"  GPU {name}: distributed {distributed:,.0f} samples/s per GPU vs single-process loop {plain:,.0f}: "
          f"{ratio:.2f}x (target >= 0.9)  device {model.state.device}")
    print(f"  test AUC: deep {deep_auc:.4f} vs MLlib GBT {gbt_auc:.4f}")
    return {"gpu": name, "distributed_samples_per_s": distributed, "plain_samples_per_s": plain, "ratio": ratio,
            "deep_auc": deep_auc, "gbt_auc": gbt_auc}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per training process")
    parser.add_argument("--backends", default="torch_distributor,horovod")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--gpu", action="store_true", help="use the gpu profile's Spark GPU settings")
    parser.add_argument("--workdir")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--loop-only", action="store_true", help="GPU: the worker's loop without Spark (see above)")
    args = parser.parse_args()
    args.backends = [b for b in args.backends.split(",") if b]
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if args.loop_only:
        workdir = Path(args.workdir or tempfile.mkdtemp(prefix="clickml-deep-loop-"))
        try:
            data, test_pd = generate(args.rows, seed=1), generate(max(10_000, args.rows // 10), seed=2)
            print(f"\ndeep model training loop (no Spark): {args.rows:,} rows, {args.epochs} epochs, "
                  f"batch {args.batch_size}")
            figures = loop_only_section(data, test_pd, args, workdir)
            if args.json:
                Path(args.json).write_text(json.dumps({"rows": args.rows, "epochs": args.epochs,
                                                       "batch_size": args.batch_size, "loop_only": figures}, indent=2))
        finally:
            if not args.workdir:
                shutil.rmtree(workdir, ignore_errors=True)
        return

    from pipelines.config import load_config
    from pipelines.spark import build_session

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="clickml-deep-bench-"))
    profile = "gpu" if args.gpu else "local"
    config = load_config(profile=profile, overrides=[f"lake.root={workdir / 'lake'}", f"spark.master={args.master}",
                                                      "logging.level=WARNING"])
    spark = build_session(config)
    try:
        data = generate(args.rows, seed=1)
        test_pd = generate(max(10_000, args.rows // 10), seed=2)
        train = spark.createDataFrame(data).repartition(8).cache()
        test = spark.createDataFrame(test_pd).cache()
        print(f"\ndeep model benchmark: {args.rows:,} training rows, {args.epochs} epochs, batch {args.batch_size}, "
              f"{os.cpu_count()} CPUs, master {args.master}")
        print("CPU (samples/s of the training loop, all processes together):")
        cpu = cpu_section(spark, train, args, workdir)
        print("GPU:")
        gpu = gpu_section(spark, train, data, test, args, workdir)
        if args.json:
            Path(args.json).write_text(json.dumps({"rows": args.rows, "epochs": args.epochs, "batch_size": args.batch_size,
                                                   "cpus": os.cpu_count(), "cpu": cpu, "gpu": gpu}, indent=2))
    finally:
        spark.stop()
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
