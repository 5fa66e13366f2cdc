"""Shard assignment, per-epoch shuffling in equal step counts, and the checkpoint store."""

from __future__ import annotations

import functools
import operator

import pandas as pd
import pytest

from pipelines.deep.errors import DeepLearningError
from pipelines.deep.shards import Piece, ShardReader, ShardSource, folder_source
from pipelines.deep.store import CheckpointStore, Folder
from tests.unit.deep.frames import write_parquet_files


def test_assignment_balances_rows_and_interleaves_when_files_are_few():
    source = ShardSource(Folder("/x"), (Piece("a", 100), Piece("b", 60), Piece("c", 50), Piece("d", 10)))
    shards = [source.assignment(r, 2)[0] for r in range(2)]
    assert sorted(p.path for s in shards for p in s) == ["a", "b", "c", "d"]
    assert [sum(p.rows for p in s) for s in shards] == [110, 110]
    assert source.assignment(0, 8) == (list(source.pieces), True)


def test_reader_shards_are_disjoint_and_batches_are_shuffled_per_epoch(tmp_path):
    frame = pd.DataFrame({"v": range(100), "split": ["train"] * 80 + ["validation"] * 20})
    write_parquet_files(frame, tmp_path / "data", files=4)
    source = folder_source(Folder(str(tmp_path / "data"))).with_filter("split", ["train"])
    readers = [ShardReader(source, r, 2, ["v"], seed=1, shuffle_buffer=8) for r in range(2)]
    shards = [sorted(v for f in r.scan() for v in f["v"]) for r in readers]
    assert sorted(shards[0] + shards[1]) == list(range(80)) and not set(shards[0]) & set(shards[1])
    assert [r.count() for r in readers] == [len(shards[0]), len(shards[1])]
    epoch0 = [b["v"].tolist() for b in readers[0].batches(0, steps=5, batch_size=8)]
    epoch1 = [b["v"].tolist() for b in readers[0].batches(1, steps=5, batch_size=8)]
    assert len(epoch0) == 5 and all(len(b) == 8 for b in epoch0) and epoch0 != epoch1
    assert set(functools.reduce(operator.iadd, epoch0, [])) <= set(shards[0])
    # more steps than the shard holds: it cycles instead of running dry
    assert len(list(readers[1].batches(0, steps=9, batch_size=8))) == 9


def test_chunks_are_whole_shuffled_batches_cut_the_same_as_batches(tmp_path):
    write_parquet_files(pd.DataFrame({"v": range(100)}), tmp_path / "data", files=3)
    reader = ShardReader(folder_source(Folder(str(tmp_path / "data"))), 0, 1, ["v"], seed=3, shuffle_buffer=24)
    for steps in (1, 7, 30):  # within one pass, to the end of a pass, cycling over several passes
        chunks = list(reader.table_chunks(2, steps=steps, batch_size=8))
        assert all(c.num_rows and c.num_rows % 8 == 0 for c in chunks) and sum(c.num_rows for c in chunks) == steps * 8
        batches = [b["v"].tolist() for b in reader.batches(2, steps=steps, batch_size=8)]
        assert batches == [c["v"].to_pylist()[i:i + 8] for c in chunks for i in range(0, c.num_rows, 8)]
    assert len(list(reader.table_chunks(0, steps=7, batch_size=8))) > 1  # the buffer, not the epoch, sets a chunk


def test_files_whose_types_differ_are_promoted_or_named(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "data"
    folder.mkdir()
    pq.write_table(pa.table({"v": pa.array(range(6), type=pa.int32())}), folder / "a.parquet")
    pq.write_table(pa.table({"v": pa.array(range(6, 12), type=pa.int64())}), folder / "b.parquet")
    reader = ShardReader(folder_source(Folder(str(folder))), 0, 1, ["v"], shuffle_buffer=100)
    assert sorted(v for b in reader.batches(0, steps=3, batch_size=4) for v in b["v"]) == list(range(12))
    pq.write_table(pa.table({"v": pa.array(["x"] * 6)}), folder / "b.parquet")
    with pytest.raises(DeepLearningError, match=r"disagree on the types of \['v'\]"):
        list(ShardReader(folder_source(Folder(str(folder))), 0, 1, ["v"], shuffle_buffer=100).batches(0, 3, 4))


def test_interleaved_reading_and_empty_shards(tmp_path):
    write_parquet_files(pd.DataFrame({"v": range(10)}), tmp_path / "one", files=1)
    source = folder_source(Folder(str(tmp_path / "one")))
    rows = [sorted(v for f in ShardReader(source, r, 3, ["v"]).scan() for v in f["v"]) for r in range(3)]
    assert rows == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    empty = source.with_filter("v", [-1])
    with pytest.raises(DeepLearningError, match="no rows in its shard"):
        list(ShardReader(empty, 0, 1, ["v"]).batches(0, steps=1, batch_size=2))
    with pytest.raises(DeepLearningError, match=r"column\(s\) \['nope'\] not in the file"):
        list(ShardReader(source, 0, 1, ["nope"]).scan())


def test_checkpoint_store_round_trips(tmp_path):
    store = CheckpointStore(f"file:{tmp_path}/ckpt")
    store.put_json("h.json", [{"epoch": 0}])
    store.put_torch("best.pt", {"epoch": 3})
    assert store.get_json("h.json") == [{"epoch": 0}] and store.get_torch("best.pt") == {"epoch": 3}
    assert store.exists("best.pt") and not store.exists("other.pt")
    assert not list((tmp_path / "ckpt").glob("*.tmp"))


def test_unbalanced_shards_fall_back_to_interleaving(tmp_path):
    """Files holding one split each leave a rank without training rows: the loop interleaves."""
    from pipelines.deep.comm import LocalComm
    from pipelines.deep.features import FeatureSchema
    from pipelines.deep.network import NetConfig
    from pipelines.deep.training import TrainTask, train_process

    class TwoRanksOfOne(LocalComm):  # rank 0 of 2; rank 1 (simulated) holds all 20 training rows
        world_size = 2

        def max_int(self, value: int) -> int:
            return max(value, 20 if value >= 0 else -20)

    frame = pd.DataFrame({"x": [float(i) for i in range(40)], "label": [i % 2 for i in range(40)],
                          "split": ["validation"] * 20 + ["train"] * 20})
    write_parquet_files(frame, tmp_path / "d", files=2)  # file 0: validation only, file 1: train only
    source = folder_source(Folder(str(tmp_path / "d")))
    assert [p.path for p in ShardReader(source.with_filter("split", ["train"]), 0, 2, ["x"]).assignment_pieces()] == ["part-000.parquet"]
    features = FeatureSchema(("x",), (0.0,), (1.0,), (), ())
    task = TrainTask(task="binary", features=features, net=NetConfig(1, (), hidden=(4,)), label="label", weight=None,
                     train=source.with_filter("split", ["train"]), validation=None, store=CheckpointStore(str(tmp_path / "c")),
                     batch_size=4, max_epochs=1)
    out = train_process(task, TwoRanksOfOne())
    assert len(out.history) == 1
