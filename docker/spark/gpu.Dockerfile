# A Spark worker with NVIDIA GPUs: CUDA runtime, Java 17, Python 3.11, clickml with CUDA PyTorch.
# Built and started only with the `gpu` compose profile:
#   docker compose -f docker/compose.yaml --profile gpu up -d spark-worker-gpu
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH \
    JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64 PYSPARK_PYTHON=/opt/venv/bin/python CLICKML_CONF_DIR=/opt/clickml/conf
RUN apt-get update \
 && apt-get install -y --no-install-recommends software-properties-common \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv openjdk-17-jre-headless procps tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/clickml
COPY setup.py constraints.txt README.md ./
COPY pipelines pipelines
COPY jobs jobs
COPY conf conf
# torch from the CUDA index; everything else from the pinned set.
RUN python3.11 -m venv /opt/venv && pip install --upgrade pip \
 && grep -v '^torch==' constraints.txt > /tmp/constraints-gpu.txt \
 && pip install --index-url "$TORCH_INDEX_URL" "torch==2.13.0" \
 && pip install -c /tmp/constraints-gpu.txt -e ".[dl]"
COPY docker/spark/gpu-discovery.sh /opt/spark-gpu/gpu-discovery.sh
COPY docker/entrypoint.sh /usr/local/bin/clickml-entrypoint
ENV SPARK_WORKER_OPTS="-Dspark.worker.resource.gpu.amount=1 -Dspark.worker.resource.gpu.discoveryScript=/opt/spark-gpu/gpu-discovery.sh"
ENTRYPOINT ["tini", "--", "clickml-entrypoint"]
CMD ["spark-worker"]
