"""Airflow DAG: Hourly ingestion of landing files into bronze. Built from config by pipelines.orchestration.factory
(`orchestration:` in conf/*.yaml; profile from $CLICKML_PROFILE)."""

from pipelines.orchestration.factory import build_dag

dag = build_dag("ingest")
