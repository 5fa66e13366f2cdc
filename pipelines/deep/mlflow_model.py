"""The deep model in MLflow: a pyfunc flavor (pandas in, predictions out) with a signature, and
loading it back as a `DeepTabularModel` that scores Spark DataFrames.

The artifact is the model's own file (`model.pt`: encoding, network shape, best weights); the
pyfunc's `predict` returns `prediction` (and `probability` = P(1) for binary models), computed by
the same `Scorer` as `DeepTabularModel.transform`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow.pyfunc
import pandas as pd

from pipelines.deep.estimator import DeepTabularModel

ARTIFACT = "model"


class DeepPyfuncModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc wrapper of a `DeepTabularModel`."""

    def load_context(self, context) -> None:
        self.model = DeepTabularModel.from_bytes(Path(context.artifacts[ARTIFACT]).read_bytes())

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        values = self.model.predict_pandas(model_input)
        if self.model.state.task == "binary":
            threshold = self.model.value("threshold")
            return pd.DataFrame({"prediction": (values >= threshold).astype("float64"), "probability": values})
        return pd.DataFrame({"prediction": values})


def requirements() -> list[str]:
    import numpy
    import pyarrow
    import pyspark
    import torch

    return [f"torch=={torch.__version__.split('+')[0]}", f"pyspark=={pyspark.__version__}", f"pandas=={pd.__version__}",
            f"pyarrow=={pyarrow.__version__}", f"numpy=={numpy.__version__}", f"mlflow=={mlflow.__version__}"]


def log_deep_model(model: DeepTabularModel, example: pd.DataFrame, artifact_path: str = "model"):
    """Log `model` as a pyfunc with a signature inferred from `example` (a few raw rows)."""
    from mlflow.models import infer_signature

    wrapper = DeepPyfuncModel()
    wrapper.model = model
    signature = infer_signature(example, wrapper.predict(None, example))
    with tempfile.TemporaryDirectory(prefix="clickml-deep-model-") as tmp:
        path = Path(tmp) / "model.pt"
        path.write_bytes(model.to_bytes())
        # Explicit requirements: inferring them would load the model in a subprocess.
        return mlflow.pyfunc.log_model(
            name=artifact_path, python_model=DeepPyfuncModel(), artifacts={ARTIFACT: str(path)},
            signature=signature, input_example=example, pip_requirements=requirements(),
        )


def load_deep_model(uri: str) -> DeepTabularModel:
    """The `DeepTabularModel` behind a pyfunc URI (e.g. `models:/clickml-propensity@champion`)."""
    wrapper = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    if not isinstance(wrapper, DeepPyfuncModel):
        raise TypeError(f"{uri} is a pyfunc model but not a clickml deep model ({type(wrapper).__name__})")
    return wrapper.model
