#!/usr/bin/env bash
# One PostgreSQL server, two metadata databases: Airflow's and MLflow's (first start only).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" <<SQL
CREATE USER airflow WITH PASSWORD '${AIRFLOW_DB_PASSWORD:-airflow}';
CREATE DATABASE airflow OWNER airflow;
CREATE USER mlflow WITH PASSWORD '${MLFLOW_DB_PASSWORD:-mlflow}';
CREATE DATABASE mlflow OWNER mlflow;
SQL
