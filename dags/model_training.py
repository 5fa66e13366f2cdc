"""Airflow DAG: Model training, registration and promotion. Built from config by pipelines.orchestration.factory
(`orchestration:` in conf/*.yaml; profile from $CLICKML_PROFILE)."""

from pipelines.orchestration.factory import build_dag

dag = build_dag("training")
