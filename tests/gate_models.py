#!/usr/bin/python3
"""gate_models.py OUT_DIR: builds the release-gate test canaries for the churn demo model
(8 features, binary:logistic), with Debian's XGBoost, seeded and single-threaded:

  OUT_DIR/shuffled/model.json  trained on churn's rows with the labels shuffled: answers fast
                               and without errors, but its classes disagree with churn-v1's
                               on a large share of rows (a wrong-but-fast canary)
  OUT_DIR/slow/model.json      churn's task with 300 trees of depth 8: the same answers
                               shape, many times the prediction cost (a slow canary)
  OUT_DIR/regression/model.json  data/models/regression's task retrained with a smaller
                               step: answers close to the original's, some rows within the
                               1e-3 relative difference prediction-disagreement allows and
                               some not

The data follows data/make_demo_models.py's churn_data, so the features mean the same."""
import os
import sys

import numpy as np
import xgboost as xgb

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))
import make_demo_models as demo  # noqa: E402


def save(booster, out, name):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    booster.save_model(os.path.join(d, "model.json"))


def main():
    out = sys.argv[1]
    rng = np.random.default_rng(31)
    x, y = demo.churn_data(rng)
    params = {"objective": "binary:logistic", "max_depth": 4, "eta": 0.3, "eval_metric": "logloss"}
    shuffled = np.random.default_rng(7).permutation(y)
    save(demo.train(params, x, shuffled, 40), out, "shuffled")
    slow = {"objective": "binary:logistic", "max_depth": 8, "eta": 0.01, "min_child_weight": 0,
            "eval_metric": "logloss"}
    save(demo.train(slow, x, y, 300), out, "slow")
    # make_demo_models.make_regression's data, drawn the same way (seed 11).
    rng = np.random.default_rng(11)
    n, f = 2000, 6
    xr = rng.uniform(-2, 2, size=(n, f))
    yr = 3.0 * xr[:, 0] - 2.0 * xr[:, 1] ** 2 + np.sin(3 * xr[:, 2]) + rng.normal(scale=0.1, size=n)
    xr = demo.with_missing(rng, xr, 0.05)
    save(demo.train({"objective": "reg:squarederror", "max_depth": 5, "eta": 0.2,
                     "eval_metric": "rmse"}, xr, yr.astype(np.float32), 51), out, "regression")


if __name__ == "__main__":
    main()
