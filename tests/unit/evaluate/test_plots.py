"""The plots are written as valid PNGs of a readable size."""

from __future__ import annotations

import struct

import pytest

from pipelines.evaluate import binary_metrics, plot_calibration, plot_feature_importance, plot_roc, write_plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def evaluation(binary_df):
    return binary_metrics(binary_df, threshold=0.3)


def test_write_plots(evaluation, tmp_path):
    paths = write_plots(evaluation, tmp_path / "plots", prefix="test_")
    assert [p.name for p in paths] == ["test_roc.png", "test_pr.png", "test_lift.png", "test_calibration.png"]
    for path in paths:
        width, height = png_size(path)
        assert width >= 600 and height >= 500 and path.stat().st_size > 10_000


def test_overlay_of_several_evaluations(evaluation, tmp_path):
    path = plot_roc({"train": evaluation, "test": evaluation}, tmp_path / "roc.png", title="Train vs test")
    assert png_size(path)[0] >= 600
    assert png_size(plot_calibration({"champion": evaluation}, tmp_path / "cal.png"))[0] >= 600
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_roc({}, tmp_path / "none.png")


def test_feature_importance(tmp_path):
    names = [f"feature_{i}" for i in range(30)]
    values = [(-1) ** i * i / 10 for i in range(30)]
    path = plot_feature_importance(names, values, tmp_path / "importance.png", top=20)
    width, height = png_size(path)
    assert width >= 700 and height > width  # 20 bars: a tall figure
    with pytest.raises(ValueError, match="2 feature names but 1 values"):
        plot_feature_importance(["a", "b"], [1.0], tmp_path / "x.png")


def test_single_class_evaluation_still_plots(spark, tmp_path):
    df = spark.createDataFrame([(0, 0.1), (0, 0.7)], "label int, probability_1 double")
    paths = write_plots(binary_metrics(df, threshold=0.5), tmp_path)
    assert all(png_size(p) for p in paths)
