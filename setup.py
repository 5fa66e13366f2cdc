"""Packaging for clickml: the `pipelines` library, the `clickml` command and its extras.

Install with the pinned set of versions that is known to work together:

    pip install -c constraints.txt -e ".[dev]"
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

INSTALL_REQUIRES = [
    "pyspark>=4.1,<4.2",
    "delta-spark==4.4.0",
    "deltalake>=1.6,<2",
    "hdfs-native>=0.14,<0.15",  # HDFS from plain Python: landing listings, delta-rs reads
    "pyarrow>=18",
    "pandas>=2.2",
    "numpy>=1.26",
    "pydantic>=2.7,<3",
    "pyyaml>=6",
    "mlflow>=3,<4",
    "great-expectations>=1,<2",
    "matplotlib>=3.8",
]

EXTRAS_REQUIRE = {
    # Airflow 3 and the Spark provider; the provider pulls pyspark-client, pinned with pyspark.
    "airflow": [
        "apache-airflow>=3,<4",
        "apache-airflow-providers-apache-spark>=5",
    ],
    # Deep learning on Spark (TorchDistributor); Horovod is built by `make horovod`.
    "dl": [
        "torch==2.13.0",
    ],
    # `clickml produce`: replay landing files into a Kafka topic (librdkafka client).
    "kafka": ["confluent-kafka>=2.6,<3"],
    # `clickml serve` / `clickml materialize`: the online model server and its Redis feature store.
    "serve": ["fastapi>=0.110", "uvicorn>=0.30", "redis>=5,<9"],
    "dev": [
        "pytest>=8",
        "pytest-timeout>=2",
        "pytest-xdist>=3.6",
        "statsmodels>=0.14",  # reference values for the experiment statistics tests
        "httpx>=0.27",  # FastAPI's TestClient
        "moto[server]>=5",
        "boto3>=1.34",
        "scikit-learn>=1.4",
        "selenium>=4.20",  # the Airflow UI test drives headless Chromium
    ],
}

setup(
    name="clickml",
    version="0.1.0",
    description="Spark-based tabular ML pipeline for clickstream data, orchestrated by Airflow",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["pipelines", "pipelines.*"]),
    package_data={"pipelines": ["py.typed", "spark/log4j2-clickml.properties"]},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": ["clickml = pipelines.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3.11",
        "Topic :: Scientific/Engineering :: Information Analysis",
    ],
)
