#!/usr/bin/python3
"""fastapi_v2.py: the FastAPI + uvicorn peer of the HTTP benchmark: V2 infer on XGBoost's Python API.

Run with Debian's Python (python3-fastapi, uvicorn, python3-xgboost; python3-uvloop and
python3-httptools are used by uvicorn when installed):

    /usr/bin/python3 bench/http/fastapi_v2.py --model MODEL_JSON --port PORT [--name fraud]
                     [--workers N] [--predict dmatrix|inplace] [--nthread N]

It answers what ksv-engine answers for an XGBoost model, so wrk can send both the same bytes:
  POST /v2/models/{name}/infer   V2 JSON in; one output "output-0", FP32, shape [N] out
  GET  /v2/health/ready, /v2/health/live
This is the straightforward way to serve XGBoost from Python, written to be fast rather than
elaborate: no pydantic models (KServe's server validates through pydantic and is slower), the
raw body through the json module, numpy, one Booster per worker process.

--predict: "dmatrix" (Booster.predict on a DMatrix, the default) or "inplace"
(Booster.inplace_predict). With XGBoost 1.7.4 on the 2-core bench machine DMatrix predict was
the faster of the two for 1 and 64 rows of the 100-tree fraud model (~250 vs ~265 us and
~435 vs ~470 us per call, best of 5), so it is the default. --nthread is XGBoost's thread
count per worker (default 1: one worker per core is how the 2-worker run uses the machine,
and OpenMP start-up costs more than it saves on 1-64 rows).
"""

import argparse
import json
import os
import uuid

import numpy as np
import xgboost as xgb
from fastapi import FastAPI, Request
from fastapi.responses import Response

# uvicorn's worker processes import this module afresh, so the settings travel in the
# environment that main() sets before starting uvicorn.
ENV_MODEL = "KSV_BENCH_FASTAPI_MODEL"
ENV_NAME = "KSV_BENCH_FASTAPI_NAME"
ENV_PREDICT = "KSV_BENCH_FASTAPI_PREDICT"
ENV_NTHREAD = "KSV_BENCH_FASTAPI_NTHREAD"

NUMERIC_DATATYPES = {
    "FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64",
    "UINT8", "UINT16", "UINT32", "UINT64", "BOOL",
}


class BadRequest(Exception):
    pass


def load_booster():
    path = os.environ.get(ENV_MODEL)
    if not path:
        return None, 0
    booster = xgb.Booster()
    booster.load_model(path)
    booster.set_param({"nthread": int(os.environ.get(ENV_NTHREAD, "1"))})
    return booster, booster.num_features()


BOOSTER, NUM_FEATURES = load_booster()
MODEL_NAME = os.environ.get(ENV_NAME, "fraud")
USE_INPLACE = os.environ.get(ENV_PREDICT, "dmatrix") == "inplace"
NTHREAD = int(os.environ.get(ENV_NTHREAD, "1"))

app = FastAPI()


def json_response(status, obj):
    return Response(content=json.dumps(obj, separators=(",", ":")), status_code=status,
                    media_type="application/json")


def decode_rows(body):
    """Returns the request's rows as a float32 array of shape [N, NUM_FEATURES]."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise BadRequest("body must be an object with an 'inputs' list")
    if len(body["inputs"]) != 1:
        raise BadRequest("the model takes exactly one input tensor")
    tensor = body["inputs"][0]
    if not isinstance(tensor, dict):
        raise BadRequest("an input must be an object")
    if tensor.get("datatype") not in NUMERIC_DATATYPES:
        raise BadRequest(f"unsupported datatype {tensor.get('datatype')!r}")
    shape = tensor.get("shape")
    if (not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape)
            or len(shape) not in (1, 2)):
        raise BadRequest("shape must be [N, F] or [F]")
    rows, features = (shape[0], shape[1]) if len(shape) == 2 else (1, shape[0])
    if features != NUM_FEATURES:
        raise BadRequest(f"the model takes {NUM_FEATURES} features, got {features}")
    try:
        data = np.asarray(tensor.get("data"), dtype=np.float32)
    except (TypeError, ValueError):
        # JSON null is a missing value (NaN), as in ksv-engine; the slow path only then
        try:
            flat = np.asarray(tensor.get("data"), dtype=object).reshape(-1)
            data = np.array([np.nan if v is None else v for v in flat], dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise BadRequest(f"data is not numeric: {e}") from None
    if data.size != rows * features:
        raise BadRequest(f"data has {data.size} values, shape wants {rows * features}")
    return data.reshape(rows, features)


@app.get("/v2/health/live")
async def live():
    return json_response(200, {"live": True})


@app.get("/v2/health/ready")
async def ready():
    return json_response(200 if BOOSTER is not None else 503, {"ready": BOOSTER is not None})


@app.post("/v2/models/{name}/infer")
async def infer(name: str, request: Request):
    if name != MODEL_NAME or BOOSTER is None:
        return json_response(404, {"error": f"model {name} not found"})
    try:
        body = json.loads(await request.body())
        rows = decode_rows(body)
    except (ValueError, BadRequest) as e:
        return json_response(400, {"error": str(e)})
    if USE_INPLACE:
        preds = BOOSTER.inplace_predict(rows)
    else:
        preds = BOOSTER.predict(xgb.DMatrix(rows, missing=np.nan, nthread=NTHREAD))
    preds = preds.astype(np.float32).reshape(-1)
    request_id = body.get("id")
    return json_response(200, {
        "model_name": name,
        "model_version": "1",
        "id": request_id if isinstance(request_id, str) else str(uuid.uuid4()),
        "outputs": [{
            "name": "output-0",
            "datatype": "FP32",
            "shape": [int(preds.shape[0])],
            "data": preds.tolist(),
        }],
    })


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--name", default="fraud")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--predict", choices=("dmatrix", "inplace"), default="dmatrix")
    ap.add_argument("--nthread", type=int, default=1)
    args = ap.parse_args()

    os.environ[ENV_MODEL] = os.path.abspath(args.model)
    os.environ[ENV_NAME] = args.name
    os.environ[ENV_PREDICT] = args.predict
    os.environ[ENV_NTHREAD] = str(args.nthread)

    import uvicorn
    here = os.path.dirname(os.path.abspath(__file__))
    uvicorn.run("fastapi_v2:app", app_dir=here, host=args.host, port=args.port,
                workers=args.workers, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
