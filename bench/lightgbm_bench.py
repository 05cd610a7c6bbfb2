"""bench/lightgbm_bench.py [BUILD_DIR]: rows/s of ksv-forest against LightGBM's own
Booster.predict on the same LightGBM model, one thread each, in one run.

The model: binary, 100 trees of up to 63 leaves on 20 features (as the fraud model the
XGBoost figures use: 100 trees, depth 6), trained here on fixed-seed data with 10% NaN;
both predict rows drawn alike (10% NaN, uniform in [-3, 3)) at 1, 64 and 10,000 rows. Run it
with scripts/venv-lightgbm.sh's python (the venv holds lightgbm); BUILD_DIR (default build)
holds bench/forest_bench, which times ksv-forest."""
import os
import subprocess
import sys
import tempfile
import time

import lightgbm as lgb
import numpy as np

build = sys.argv[1] if len(sys.argv) > 1 else "build"
rng = np.random.default_rng(1)
X = rng.uniform(-3, 3, size=(20000, 20))
X[rng.random(X.shape) < 0.1] = np.nan
y = (np.nan_to_num(X[:, 0]) * np.nan_to_num(X[:, 1]) + np.nan_to_num(X[:, 2]) > 0).astype(int)
booster = lgb.train({"objective": "binary", "num_leaves": 63, "max_depth": 6, "verbose": -1,
                     "num_threads": 1, "seed": 1}, lgb.Dataset(X, y), 100)
work = tempfile.mkdtemp(prefix="ksv-lgb-bench-")
path = os.path.join(work, "model.txt")
booster.save_model(path)
booster = lgb.Booster(model_file=path)

P = rng.uniform(-3, 3, size=(10000, 20)).astype(np.float32)
P[rng.random(P.shape) < 0.1] = np.nan
P = P.astype(np.float64)
print("LightGBM %s, Booster.predict(num_threads=1):" % lgb.__version__)
lgb_rate = {}
for rows in (1, 64, 10000):
    x = P[:rows]
    booster.predict(x, num_threads=1)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < 0.6:
        booster.predict(x, num_threads=1)
        calls += 1
    lgb_rate[rows] = rows * calls / (time.perf_counter() - start)
    print("%7d rows: %12.0f rows/s" % (rows, lgb_rate[rows]))
out = subprocess.run([os.path.join(build, "bench", "forest_bench"), path, "1"], capture_output=True,
                     text=True, check=True).stdout
print(out, end="")
for line in out.splitlines():
    parts = line.split()
    if len(parts) == 3 and parts[0].isdigit() and int(parts[0]) in lgb_rate:
        rows = int(parts[0])
        print("%7d rows: ksv-forest / LightGBM = %.1fx" % (rows, float(parts[1]) / lgb_rate[rows]))
os.unlink(path)
os.rmdir(work)
