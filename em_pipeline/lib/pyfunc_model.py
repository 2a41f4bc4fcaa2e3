"""MLflow pyfunc model (logged "from code"): scores customers given in original units.

MLflow copies this file into the logged model and runs it at load time; ``em_core`` and
``em_pipeline`` travel with the model through ``code_paths``, and the fitted parameters through the
``segment_bundle`` JSON artifact, so nothing is pickled.

Input: a DataFrame with the schema's feature columns (NaN allowed for missing cells; extra columns,
such as the customer id, are ignored). Output: ``segment``, ``segment_label``, ``confidence`` and
``prob_segment_<k>`` per row.
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class SegmentModel(PythonModel):
    def load_context(self, context):
        from em_pipeline.lib.segments import SegmentBundle

        self.bundle = SegmentBundle.load(context.artifacts["segment_bundle"])

    def predict(
        self, context, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        df = pd.DataFrame(model_input)
        return self.bundle.score(df).reset_index(drop=True)


mlflow.models.set_model(SegmentModel())
