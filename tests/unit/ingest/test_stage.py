from pipelines.ingest.stage import DEDUP_PARTITION_BYTES, write_settings


def test_write_settings_size_the_dedup_shuffle_by_the_input(spark):
    session = int(spark.conf.get("spark.sql.shuffle.partitions"))
    small = write_settings(spark, 1024)
    assert small["spark.sql.shuffle.partitions"] == str(session)  # never fewer than the session's
    large = write_settings(spark, 3 * 1024 * DEDUP_PARTITION_BYTES + 1)
    assert large["spark.sql.shuffle.partitions"] == str(max(session, 3 * 1024 + 1))
    # the partitioned write takes the window's output without sorting it again
    assert large["spark.sql.optimizer.plannedWrite.enabled"] == "false"
    assert int(large["spark.sql.maxConcurrentOutputFileWriters"]) > 0
