"""ksv with an edge node reached over SSH: a real OpenSSH sshd on 127.0.0.1 with host and
user keys made here. Adds the node (unknown host refused, --trust-new records it, a changed
key and a wrong user key refused), applies and moves traffic through the tunnel, and cuts
the link: the node shows unreachable within 5 s, its engine keeps serving load sent straight
to it with zero errors, a change made meanwhile fails and is recorded, and reconcile applies
it once sshd is back."""
import http.client
import json
import os
import signal
import subprocess
import threading
import time

from ksvtest import ksv_cli, DATA, ENGINE, KSV, TOP, check, finish, free_port, load_json, lock_pid, tmpdir
from sshnode import SshNode, skip_unless_available

skip_unless_available()

work = tmpdir("ksv-ssh-")
env = dict(os.environ, KSV_DB=os.path.join(work, "ksv.db"), HOME=work, USER="tester",
           XDG_STATE_HOME=os.path.join(work, "state"), KSV_ENGINE=ENGINE, KSV_SAMPLE_SECONDS="0.5")
env.pop("SSH_AUTH_SOCK", None)
box = SshNode(work)
port, known, key, address = box.port, box.known_hosts, box.key, box.address
start_sshd, stop_sshd = box.start, box.stop


ksv, ksv_json = ksv_cli(env)


engine_dir = os.path.join(work, "edge-engine")
engine_port = free_port()
common = box.node_args(ENGINE, engine_dir, engine_port)


def engine_pid():
    return lock_pid(engine_dir)


def engine_request(method, path, body=None):
    with open(os.path.join(engine_dir, "token")) as f:
        token = f.read().strip()
    c = http.client.HTTPConnection("127.0.0.1", engine_port, timeout=10)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Authorization": "Bearer " + token})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data) if data else None


try:
    check(start_sshd(), "sshd runs on 127.0.0.1:%d" % port)

    rc, _, err = ksv("node", "add", "edge", address, *common)
    check(rc == 1 and "is not in" in err and "--trust-new" in err and os.path.getsize(known) == 0,
          "an unknown host key is refused and nothing is recorded (%s)" % err.strip()[:120])
    rc, out, err = ksv("node", "add", "edge", address, "--trust-new", *common)
    check(rc == 0 and "added" in out, "--trust-new records the host key and adds the node (%s)" % err.strip()[:200])
    check(os.path.getsize(known) > 0, "the key is in the known_hosts file")
    check(engine_pid() is not None, "ksv started ksv-engine on the node over SSH")
    engine_port_open = engine_request("GET", "/ksv/v1/node")[0] == 200
    check(engine_port_open, "the engine listens on the node's loopback")

    # --install: no engine on the node's PATH, so ksv uploads this build's, but only to a
    # node of the same architecture (a node-bin/uname stands in for another machine's).
    inst_dir = os.path.join(work, "installed-engine")
    inst_args = box.node_args(None, inst_dir, free_port())
    rc, _, err = ksv("node", "add", "edge-i", address, *inst_args)
    check(rc == 1 and "--install" in err, "without --engine-path or --install, a node with no ksv-engine is refused (%s)" % err.strip()[:120])
    fake_uname = os.path.join(box.bin, "uname")
    with open(fake_uname, "w") as f:
        f.write("#!/bin/sh\n[ \"$1\" = -m ] && { echo riscv64; exit 0; }\nexec /bin/uname \"$@\"\n")
    os.chmod(fake_uname, 0o755)
    rc, _, err = ksv("node", "add", "edge-i", address, "--install", *inst_args)
    check(rc == 1 and "riscv64" in err and os.uname().machine in err and not os.path.exists(os.path.join(inst_dir, "bin")),
          "--install refuses a node of another architecture, uploading nothing (%s)" % err.strip()[:160])
    # A node whose answers make no sense (uname prints nothing) is refused with a reason.
    with open(fake_uname, "w") as f:
        f.write("#!/bin/sh\nexit 1\n")
    rc, _, err = ksv("node", "add", "edge-i", address, "--install", *inst_args)
    check(rc == 1 and "cannot read" in err and "uname -m" in err,
          "a node that does not answer uname -m is refused, saying so (%s)" % err.strip()[:160])
    os.remove(fake_uname)
    rc, out, err = ksv("node", "add", "edge-i", address, "--install", *inst_args)
    with open(ENGINE, "rb") as f:
        engine_digest = __import__("hashlib").sha256(f.read()).hexdigest()
    installed = os.path.join(inst_dir, "bin", engine_digest)
    check(rc == 0 and "installed at" in out and os.access(installed, os.X_OK),
          "--install uploads this ksv-engine into the node's state dir and starts it (%s)" % (out + err).strip()[:200])
    check("uploaded" in err and "ksv-engine" in err, "the engine upload reports its progress")
    inst_pid = lock_pid(inst_dir)
    inst_exe = os.path.realpath("/proc/%d/exe" % inst_pid) if inst_pid else None
    check(inst_exe == os.path.realpath(installed), "the node runs the installed copy (%s)" % inst_exe)
    rc, st = ksv_json("node", "status", "edge-i")
    check(rc == 0 and st[0]["reachable"], "the installed engine is reachable through SSH")
    check(ksv("node", "rm", "edge-i")[0] == 0, "node rm edge-i")
    if inst_pid:
        os.kill(inst_pid, signal.SIGTERM)

    # Wrong user key; changed host key.
    rc, _, err = ksv("node", "add", "edge2", address, *(common[:1] + [os.path.join(work, "stranger_key")] + common[2:]))
    check(rc == 1 and ("auth" in err.lower() or "401" in err or "denied" in err.lower()),
          "a user key the node does not know is refused (%s)" % err.strip()[:120])
    known2 = os.path.join(work, "known_hosts_changed")
    with open(os.path.join(work, "other_host.pub")) as f:
        other = f.read().split()
    with open(known2, "w") as f:
        f.write("# another host\n[127.0.0.1]:%d %s %s\n" % (port, other[0], other[1]))
    args2 = list(common)
    args2[args2.index(known)] = known2
    rc, _, err = ksv("node", "add", "edge3", address, "--trust-new", *args2)
    check(rc == 1 and known2 in err and ":2" in err, "a changed host key is refused, naming file and line (%s)" % err.strip()[:160])

    # Apply and move traffic through SSH.
    models = os.path.join(DATA, "models")
    plain = os.path.join(work, "churn.yaml")
    with open(plain, "w") as f:
        f.write("apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: churn\n"
                "spec:\n  predictor:\n    model:\n      modelFormat:\n        name: xgboost\n"
                "      storageUri: %s/churn-v1/model.json\n" % models)
    canary = os.path.join(work, "churn-canary.yaml")
    with open(canary, "w") as f:
        f.write(open(plain).read().replace("churn-v1", "churn-v2").replace("  predictor:\n", "  predictor:\n    canaryTrafficPercent: 10\n"))
    rc, out, err = ksv("apply", "-f", plain)
    check(rc == 0 and engine_request("GET", "/ksv/v1/models/churn")[1]["effective_traffic"] == {"churn-00001": 100},
          "apply through the SSH tunnel (%s)" % err.strip()[:120])
    check("uploaded" in err and "churn-v1/model.json" in err, "apply reports the model upload's progress (%s)" % err.strip()[:160])
    rev = engine_request("GET", "/ksv/v1/models/churn")[1]["revisions"][0]
    remote = rev["spec"]["storage_uri"]
    check(remote.startswith(os.path.realpath(engine_dir) + "/models/") or remote.startswith(engine_dir + "/models/"),
          "the node loads its own copy, uploaded by SFTP into its state dir (%s)" % remote)
    with open(os.path.join(DATA, "models", "churn-v1", "model.json"), "rb") as f:
        local_digest = __import__("hashlib").sha256(f.read()).hexdigest()
    check(os.path.basename(os.path.dirname(remote)) == local_digest + ".d",
          "the copy is named by its sha256")
    rc, out, err = ksv("reconcile", "churn")
    check(rc == 0 and "upload" not in err, "a second push finds the file already there: nothing is sent again")
    rc, out, err = ksv("apply", "-f", canary)
    check(rc == 0 and engine_request("GET", "/ksv/v1/models/churn")[1]["effective_traffic"] == {"churn-00001": 90, "churn-00002": 10},
          "canary through SSH")
    check(ksv("rollout", "set-traffic", "churn", "40")[0] == 0 and
          engine_request("GET", "/ksv/v1/models/churn")[1]["effective_traffic"] == {"churn-00001": 60, "churn-00002": 40},
          "set-traffic through SSH")
    check(ksv("rollout", "promote", "churn")[0] == 0 and
          engine_request("GET", "/ksv/v1/models/churn")[1]["effective_traffic"] == {"churn-00002": 100},
          "promote through SSH")
    check(ksv("rollout", "rollback", "churn")[0] == 0 and
          engine_request("GET", "/ksv/v1/models/churn")[1]["effective_traffic"] == {"churn-00001": 100},
          "rollback through SSH")
    rc, st = ksv_json("node", "status", "edge")
    check(rc == 0 and st[0]["reachable"] and st[0]["drift"] == [], "node status: reachable, no drift")

    # ksv-top drives the SSH node like a local one: figures through the tunnel.
    load = subprocess.Popen([KSV, "load", "churn", "--rps", "50", "--duration", "6", "-o", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    # --once takes one refresh plus the probes: start it once the load (which dials the
    # node first) is sending, seen in the engine's own counters.
    def churn_requests():
        st, h = engine_request("GET", "/ksv/v1/histograms")
        return sum(sum(s["codes"].values()) for s in (h or {}).get("series", []) if s["model"] == "churn")
    base, deadline = churn_requests(), time.time() + 15
    while churn_requests() == base and time.time() < deadline:
        time.sleep(0.1)
    t0 = time.time()
    r = subprocess.run([TOP, "--once", "-o", "json", "-d", "1"], capture_output=True, text=True,
                       env=env, timeout=60)
    once_s = time.time() - t0
    load_out, _ = load.communicate(timeout=30)
    try:
        report = json.loads(load_out)
    except ValueError:
        report = {}
    check(load.returncode == 0 and report.get("errors") == 0 and report.get("completed", 0) >= 250,
          "ksv load through the SSH tunnel: %s requests, %s errors" % (report.get("completed"), report.get("errors")))
    try:
        snap = json.loads(r.stdout)
    except ValueError:
        snap = {}
    edge = [n for n in snap.get("nodes", []) if n.get("name") == "edge"]
    churn = [m for m in snap.get("models", []) if m.get("name") == "churn"]
    check(r.returncode == 0 and edge and edge[0].get("reachable") is True,
          "ksv-top sees the SSH node reachable (exit %d)" % r.returncode)
    check(churn and isinstance(churn[0].get("qps"), (int, float)) and churn[0]["qps"] > 0,
          "ksv-top shows live QPS for a model on the SSH node (%s, --once took %.1f s)" %
          (churn[0].get("qps") if churn else None, once_s))

    # Cut the link while load goes straight to the node's engine.
    req = load_json("requests", "churn-v1.json")
    stop_load = threading.Event()
    counts = {"ok": 0, "bad": 0}

    def load():
        c = http.client.HTTPConnection("127.0.0.1", engine_port, timeout=10)
        body = json.dumps(req)
        while not stop_load.is_set():
            try:
                c.request("POST", "/v2/models/churn/infer", body=body)
                r = c.getresponse()
                r.read()
                counts["ok" if r.status == 200 else "bad"] += 1
            except OSError:
                counts["bad"] += 1
                c = http.client.HTTPConnection("127.0.0.1", engine_port, timeout=10)
            time.sleep(0.002)

    t = threading.Thread(daemon=True, target=load)
    t.start()
    time.sleep(0.5)
    stop_sshd()
    t0 = time.time()
    rc, st = ksv_json("--timeout", "5", "node", "status", "edge")
    took = time.time() - t0
    check(rc == 1 and st and st[0]["reachable"] is False and took <= 5.0,
          "with sshd stopped the node shows unreachable within 5 s (%.1f s)" % took)
    r = subprocess.run([TOP, "--once", "-o", "json", "-d", "1"], capture_output=True, text=True,
                       env=env, timeout=60)
    try:
        snap = json.loads(r.stdout)
    except ValueError:
        snap = {}
    edge = [n for n in snap.get("nodes", []) if n.get("name") == "edge"]
    check(r.returncode == 0 and edge and edge[0].get("reachable") is False,
          "ksv-top shows the SSH node unreachable while sshd is down (exit %d)" % r.returncode)
    rc, _, err = ksv("--timeout", "5", "rollout", "set-traffic", "churn", "0")
    check(rc == 1, "a change while the link is down fails, naming the node (%s)" % err.strip()[:100])
    rc, hist = ksv_json("history", "churn", "--limit", "2")
    check(hist and hist[0]["action"] == "reconcile" and "failed" in hist[0]["result"],
          "history records the change and the node's failure")
    check(start_sshd(), "sshd is back")
    rc, out, err = ksv("reconcile", "churn")
    check(rc == 0, "reconcile after the link returns applies what changed meanwhile (%s)" % err.strip()[:100])
    time.sleep(0.3)
    stop_load.set()
    t.join()
    check(counts["bad"] == 0 and counts["ok"] > 50,
          "the node's engine served %d requests with zero errors while sshd was down and back" % counts["ok"])
    rc, view = ksv_json("get", "revisions", "churn")
    want = {r["name"]: r["traffic"] for r in view["revisions"] if r["traffic"]}
    check(engine_request("GET", "/ksv/v1/models/churn")[1]["effective_traffic"] == want,
          "the node matches the desired state again")
finally:
    pid = engine_pid()
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    stop_sshd()
finish()
