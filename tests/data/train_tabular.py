"""train_tabular: trains the models tests/runtimes_mlserver.py serves through MLServer, with
the libraries' own predictions to compare against. Run with the runtimes venv's python.

Usage: train_tabular.py OUT_DIR  ->  OUT_DIR/sklearn/model.joblib, OUT_DIR/lightgbm/model.bst,
OUT_DIR/expected.json {"X": rows, "sklearn": labels, "lightgbm": values}."""
import json
import os
import sys

import joblib
import lightgbm
import numpy as np
from sklearn.linear_model import LogisticRegression

out = sys.argv[1]
rng = np.random.default_rng(17)
X = rng.normal(size=(300, 4))
y_class = (X[:, 0] + 0.5 * X[:, 1] - X[:, 2] > 0).astype(int) + (X[:, 3] > 1).astype(int)
y_value = 3 * X[:, 0] - 2 * X[:, 1] + X[:, 2] * X[:, 3] + rng.normal(scale=0.1, size=300)

os.makedirs(os.path.join(out, "sklearn"), exist_ok=True)
os.makedirs(os.path.join(out, "lightgbm"), exist_ok=True)
clf = LogisticRegression(max_iter=500).fit(X, y_class)
joblib.dump(clf, os.path.join(out, "sklearn", "model.joblib"))
booster = lightgbm.train({"objective": "regression", "num_leaves": 15, "verbose": -1},
                         lightgbm.Dataset(X, y_value), num_boost_round=30)
booster.save_model(os.path.join(out, "lightgbm", "model.bst"))

probe = X[:8]
with open(os.path.join(out, "expected.json"), "w") as f:
    json.dump({"X": probe.tolist(), "sklearn": clf.predict(probe).tolist(),
               "lightgbm": booster.predict(probe).tolist()}, f)
