"""Airflow orchestration: DAGs built from config (`orchestration:` in conf/*.yaml).

`dags/*.py` call `build_dag(...)` from `pipelines.orchestration.factory`; every Spark step is a
`SparkSubmitOperator` running a `jobs/*.py` entry point. Nothing here starts Spark or opens a
database while a DAG file is parsed: the factory reads YAML and builds operator objects only.
"""
