"""Airflow DAG: Daily scoring with the champion, drift monitoring, retraining on an alert. Built from config by
pipelines.orchestration.factory (`orchestration:` in conf/*.yaml; profile from $CLICKML_PROFILE)."""

from pipelines.orchestration.factory import build_dag

dag = build_dag("monitoring")
