"""Airflow DAGs: a daily look at every online experiment, and a bandit's reweighting on its own
schedule. Built from config by pipelines.orchestration.factory (`experiments:` and
`orchestration.experiments` in conf/*.yaml; profile from $CLICKML_PROFILE). Without experiments
in the config, this file defines no DAG."""

from pipelines.orchestration.factory import build_dag

dag = build_dag("experiments")
bandits_dag = build_dag("bandits")
