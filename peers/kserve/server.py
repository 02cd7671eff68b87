"""A KServe model server for one LightGBM model: OUR re-implementation of KServe's own LightGBM
server (``lgbserver``, python/lgbserver in the kserve repository), which is not published as a
package. It follows lgbserver's shape: a ``kserve.Model`` that loads a ``lightgbm.Booster`` and
predicts through the SDK's ``get_predict_input`` / ``get_predict_response`` (V1 and V2 REST), one
HTTP worker, started with the SDK's own argument parser plus ``--model_dir`` and ``--nthread``.

Runs in the kserve peer virtualenv (scripts/install-peers.sh), started by
src/fiber_endpoints/peers/kserve.py.
"""

import argparse
import os

import kserve
from kserve.errors import InferenceError, ModelMissingError
from kserve.utils.utils import get_predict_input, get_predict_response
from lightgbm import Booster

parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
parser.add_argument("--model_dir", required=True, help="folder holding model.bst")
parser.add_argument("--nthread", type=int, default=1, help="LightGBM threads")


class LightGBMModel(kserve.Model):
    def __init__(self, name: str, model_dir: str, nthread: int) -> None:
        super().__init__(name)
        self.model_dir, self.nthread = model_dir, nthread

    def load(self) -> bool:
        path = os.path.join(self.model_dir, "model.bst")
        if not os.path.exists(path):
            raise ModelMissingError(path)
        self._booster = Booster(params={"nthread": self.nthread}, model_file=path)
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        try:
            rows = get_predict_input(payload, columns=self._booster.feature_name())
            return get_predict_response(payload, self._booster.predict(rows), self.name)
        except Exception as exc:
            raise InferenceError(str(exc)) from exc


if __name__ == "__main__":
    args, _ = parser.parse_known_args()
    model = LightGBMModel(args.model_name, args.model_dir, args.nthread)
    model.load()
    kserve.ModelServer(workers=1).start([model])
