"""clickml: a Spark-based tabular ML pipeline for clickstream data.

The library behind the `clickml` command, the spark-submit jobs in `jobs/` and the Airflow DAGs in
`dags/`. Each stage is a subpackage whose public entry point is `run(config, ...)`.
"""

__version__ = "0.1.0"
