"""runtime=ksv-forest through the engine: every demo model in XGBoost's JSON or UBJSON
format answers like XGBoost itself (data/expected, within 1e-5), gblinear included; the
legacy binary .bst, outside ksv-forest's formats, is refused with a reason."""
import os

from ksvtest import Engine, check, finish, load_json, max_abs_diff, model_path, DATA

names = sorted(os.listdir(os.path.join(DATA, "models")))
args = []
for n in names:
    args += ["--model", "%s=%s,runtime=ksv-forest" % (n, model_path(n))]
eng = Engine(*args)
served = [n for n in names if not any(f.endswith(".bst") for f in os.listdir(model_path(n)))]
for n in served:
    check(eng.wait_ready(n), "%s loads with runtime=ksv-forest" % n)
    st, hdrs, r = eng.request("POST", "/v2/models/%s/infer" % n, load_json("requests", n + ".json"))
    d = max_abs_diff(r["outputs"][0]["data"], load_json("expected", n + ".json")["data"]) if st == 200 else 9
    check(st == 200 and d <= 1e-5, "%s on ksv-forest equals XGBoost (max diff %.2g)" % (n, d))
    st, _, meta = eng.request("GET", "/v2/models/" + n)
    check(meta["parameters"]["runtime"] == "ksv-forest", "%s reports runtime ksv-forest" % n)
for n in set(names) - set(served):
    st, _, state = eng.request("GET", "/ksv/v1/models/" + n, admin=True)
    rev = state["revisions"][0]
    check(rev["state"] == "failed" and "legacy binary" in rev.get("error", ""),
          "%s (legacy .bst) is refused with the reason (%s)" % (n, rev.get("error", "")[:80]))
check(eng.stop() == 0, "SIGTERM: exit 0")
finish()
