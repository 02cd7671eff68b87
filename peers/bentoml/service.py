"""A BentoML service for one LightGBM model, written the way BentoML's docs show one (1.4 SDK):
the model saved to BentoML's model store with ``bentoml.lightgbm.save_model``, a
``@bentoml.service`` class that loads it with ``bentoml.lightgbm.load_model`` and one
``@bentoml.api`` taking and returning a NumPy array over BentoML's own JSON API
(``POST /predict`` with ``{"data": [[...], ...]}``; the answer is the JSON array).

Runs in the bentoml peer virtualenv (scripts/install-peers.sh), started by
src/fiber_endpoints/peers/bentoml.py with ``bentoml serve service:LightGBMService``.
"""

from typing import Annotated

import bentoml
import numpy as np
from bentoml.validators import DType

MODEL_TAG = "fiber-endpoints-lightgbm:latest"


def save(model_file: str) -> None:
    """Put the LightGBM text model into the model store (``$BENTOML_HOME``)."""
    import lightgbm

    bentoml.lightgbm.save_model(MODEL_TAG.split(":")[0], lightgbm.Booster(model_file=model_file))


@bentoml.service(workers=1)
class LightGBMService:
    model_ref = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        self.model = bentoml.lightgbm.load_model(self.model_ref)

    @bentoml.api
    def predict(self, data: Annotated[np.ndarray, DType("float64")]) -> np.ndarray:
        return np.asarray(self.model.predict(data))
