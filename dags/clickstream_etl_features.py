"""Airflow DAG: Daily silver, features and training sets. Built from config by pipelines.orchestration.factory
(`orchestration:` in conf/*.yaml; profile from $CLICKML_PROFILE)."""

from pipelines.orchestration.factory import build_dag

dag = build_dag("etl")
