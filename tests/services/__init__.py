"""Real services the tests start on 127.0.0.1 (S3, HDFS), and what their pipeline runs share."""

# A tiny clickstream that still yields train/validation/test cutoffs (horizon 1 day, 1 day of
# history), and one cheap model: the storage end-to-end tests (S3, HDFS) are about the storage.
TINY_PIPELINE = (
    "generator.users=150", "generator.days=4", "generator.bad_records.share=0.05",
    "training_sets.propensity.horizon_days=1", "training_sets.propensity.min_history_days=1",
    "training_sets.implicit.test_days=1",
    "training.jobs.propensity.models.lr.search.method=none",
    "training.jobs.propensity.models.lr.params.maxIter=10",
)
