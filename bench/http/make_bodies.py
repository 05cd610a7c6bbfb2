#!/usr/bin/python3
"""make_bodies.py: writes the V2 infer bodies of the HTTP benchmark and XGBoost's own answers.

Run with Debian's Python (python3-xgboost + numpy):

    /usr/bin/python3 bench/http/make_bodies.py --model MODEL_JSON --out DIR [--rows 1,64]

For each row count N it writes DIR/req-N.json, a V2 request with one FP32 input of shape
[N, F] (F = the model's feature count) and flat row-major data, DIR/req-N.bin with the same
rows as binary tensor data (its JSON header's length in DIR/req-N.bin.hlen), and
DIR/expected-N.json, the
predictions of Booster.predict on those rows as a flat list. The rows come from a fixed seed
and are multiples of 1/64, exact in float32 and short in decimal, so every server reads the
very same numbers whatever its JSON parser.
"""

import argparse
import json
import os
import sys

import numpy as np
import xgboost as xgb

SEED = 20240611


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--rows", default="1,64")
    args = ap.parse_args()

    booster = xgb.Booster()
    booster.load_model(args.model)
    booster.set_param({"nthread": 1})
    features = booster.num_features()
    if features <= 0:
        sys.exit(f"make_bodies.py: {args.model} reports {features} features")

    os.makedirs(args.out, exist_ok=True)
    for rows in (int(r) for r in args.rows.split(",")):
        if rows <= 0:
            sys.exit("make_bodies.py: --rows wants positive integers")
        rng = np.random.default_rng(SEED + rows)
        x = np.round(rng.normal(size=(rows, features)) * 64.0) / 64.0
        x = x.astype(np.float32)
        body = {
            "id": f"bench-{rows}",
            "inputs": [{
                "name": "input-0",
                "shape": [rows, features],
                "datatype": "FP32",
                # repr of a float32 widened to double is exact and, for k/64, short
                "data": [float(v) for v in x.reshape(-1)],
            }],
        }
        with open(os.path.join(args.out, f"req-{rows}.json"), "w") as f:
            json.dump(body, f, separators=(",", ":"))
        # The same rows in the binary tensor extension (what tritonclient sends by default):
        # a JSON header, then the float32 values little-endian; the answer in binary too.
        raw = x.astype("<f4").tobytes()
        header = {"id": f"bench-{rows}",
                  "inputs": [{"name": "input-0", "shape": [rows, features], "datatype": "FP32",
                              "parameters": {"binary_data_size": len(raw)}}],
                  "parameters": {"binary_data_output": True}}
        head = json.dumps(header, separators=(",", ":")).encode()
        with open(os.path.join(args.out, f"req-{rows}.bin"), "wb") as f:
            f.write(head + raw)
        with open(os.path.join(args.out, f"req-{rows}.bin.hlen"), "w") as f:
            f.write(str(len(head)))
        preds = booster.predict(xgb.DMatrix(x, missing=np.nan, nthread=1))
        with open(os.path.join(args.out, f"expected-{rows}.json"), "w") as f:
            json.dump([float(v) for v in preds.astype(np.float32).reshape(-1)], f)


if __name__ == "__main__":
    main()
