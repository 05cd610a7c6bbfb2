"""Writes the small LightGBM text models tests/data/lightgbm/ holds (the unit test's and the
fuzzer's seeds; tests/engine_lightgbm.py trains its own and compares with Booster.predict):
run with scripts/venv-lightgbm.sh's python: python train_small.py OUT_DIR."""
import os
import sys

import lightgbm as lgb
import numpy as np

out = sys.argv[1]
rng = np.random.default_rng(3)
X = rng.normal(size=(400, 4))
X[:, 2] = rng.integers(0, 8, size=400)
X[rng.random(X.shape) < 0.1] = np.nan
x2 = np.nan_to_num(X[:, 2])
y = (np.nan_to_num(X[:, 0]) + np.isin(x2, [1, 3, 6]) * 1.5 > 0.5).astype(int)
common = {"verbose": -1, "num_leaves": 4, "min_data_in_leaf": 5, "seed": 1, "deterministic": True,
          "min_data_per_group": 5, "cat_smooth": 1}
lgb.train(dict(common, objective="binary"), lgb.Dataset(X, y, categorical_feature=[2]), 3) \
    .save_model(os.path.join(out, "binary-cat.txt"))
lgb.train(dict(common, objective="multiclass", num_class=3), lgb.Dataset(X, np.digitize(x2, [2.5, 5.5])),
          2).save_model(os.path.join(out, "multiclass.txt"))
lgb.train(dict(common, objective="regression", zero_as_missing=True), lgb.Dataset(X, np.nan_to_num(X[:, 1]) * 2),
          2).save_model(os.path.join(out, "regression-zero.txt"))

# LightGBM's own answers on float32 probe rows (NaN as null), for tests/test_forest_lightgbm.c.
import json  # noqa: E402

P = rng.normal(size=(64, 4)).astype(np.float32)
P[:, 2] = rng.integers(-2, 12, size=64)
P[rng.random(P.shape) < 0.15] = np.nan
P[0:8, :] = np.array([0.0, -0.0, 1e-36, -1e-35, 2.5, -0.5, 3e38, 7.9], dtype=np.float32)[:, None]
expected = {"rows": [[None if np.isnan(v) else float(v) for v in row] for row in P]}
for name in ("binary-cat", "multiclass", "regression-zero"):
    b = lgb.Booster(model_file=os.path.join(out, name + ".txt"))
    expected[name] = b.predict(P.astype(np.float64)).tolist()
with open(os.path.join(out, "expected.json"), "w") as f:
    json.dump(expected, f)
