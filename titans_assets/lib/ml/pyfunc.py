"""The MLflow pyfunc form of every Titans model: a thin shell around the fitted model object.

The object itself (with its fitted state: vocabulary, category statistics, merchant summaries, the
recent daily series) is what is pickled, so `mlflow.pyfunc.load_model(...).predict(frame)` and
`unwrap_python_model().model` (the richer native API the service uses) give the same answers.
"""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd


class TitansPyfunc(mlflow.pyfunc.PythonModel):
    def __init__(self, model):
        self.model = model

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.model.predict(model_input)
