#!/usr/bin/env bash
# clickml container entrypoint: `spark-master`, `spark-worker`, `mlflow`, or any command (airflow ...).
set -euo pipefail
case "${1:-}" in
  spark-master)
    exec spark-class org.apache.spark.deploy.master.Master --host 0.0.0.0 --port 7077 --webui-port 8080 ;;
  spark-worker)
    exec spark-class org.apache.spark.deploy.worker.Worker "${SPARK_MASTER_URL:-spark://spark-master:7077}" \
      --cores "${SPARK_WORKER_CORES:-2}" --memory "${SPARK_WORKER_MEMORY:-4g}" --webui-port 8081 ;;
  mlflow)
    exec mlflow server --host 0.0.0.0 --port 5000 \
      --backend-store-uri "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI}" \
      --artifacts-destination "${MLFLOW_ARTIFACTS_DESTINATION:?set MLFLOW_ARTIFACTS_DESTINATION}" \
      --allowed-hosts "${MLFLOW_ALLOWED_HOSTS:-mlflow,mlflow:5000,localhost,localhost:5000,127.0.0.1,127.0.0.1:5000}" ;;
  *)
    exec "$@" ;;
esac
