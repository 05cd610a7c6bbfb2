#!/usr/bin/env python3
"""run-ssh-bench.py: the cost of one ksv-top probe of an SSH node, with the connection kept
open between probes (ksv_ctl_options.keep_connections) and dialled for each probe.

    bench/run-ssh-bench.py BUILD_DIR [--n 50] [--rounds 2] [--timeout 600]

BUILD_DIR is a configured and built tree (src/ksv, src/ksv-engine and the static libraries
src/libksv*.a). The script starts a real OpenSSH sshd on 127.0.0.1 the way the tests do
(tests/sshnode.py: keys made here, public-key login only), adds it with `ksv node add edge
ssh://... --trust-new` (ksv starts BUILD_DIR/src/ksv-engine on it over SSH), applies one model
(churn-v1), builds bench/ssh_probe_bench.c against BUILD_DIR's libraries and runs it with
KEEP=0 and KEEP=1 alternately, --rounds times each, N probes a run. It prints one row per run
(first probe, then mean/p50/p99 of the other N-1, and the logins sshd accepted meanwhile),
the dialled/kept ratio, and for scale the time of OpenSSH's `ssh NODE true` on the same sshd.
Everything it started (sshd and its sessions, the node's engine, temp dirs) is stopped or
removed on the way out, failures and Ctrl-C included; every step is bounded. Standard library
only. docs/BENCHMARKS.md has the figures.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SRC, "tests"))

from sshnode import SshNode, skip_unless_available  # noqa: E402
from ksvtest import free_port, lock_pid  # noqa: E402



class Deadline:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self, cap):
        left = self.end - time.monotonic()
        if left <= 1:
            raise SystemExit("run-ssh-bench: out of time (--timeout)")
        return min(cap, left)


def fail(msg):
    raise SystemExit("run-ssh-bench: " + msg)


def run(cmd, deadline, cap, env=None):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                           timeout=deadline.left(cap))
    except subprocess.TimeoutExpired:
        fail("timed out: %s" % " ".join(cmd))
    return r


def build_bench(build, deadline):
    """The tree's own build of the bench (make bench), so its flags are the tree's."""
    r = run(["make", "-C", build, "bench/ssh_probe_bench"], deadline, 300)
    if r.returncode != 0:
        fail("cannot build ssh_probe_bench:\n%s" % r.stderr)
    return os.path.join(build, "bench", "ssh_probe_bench")


def stop_pid(pid, grace=5.0):
    """SIGTERM, then SIGKILL after grace seconds; only the one PID it is given."""
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return
    end = time.monotonic() + grace
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build_dir")
    ap.add_argument("--n", type=int, default=50, help="probes per run (default 50)")
    ap.add_argument("--rounds", type=int, default=2,
                    help="runs of each mode, alternating (default 2)")
    ap.add_argument("--timeout", type=float, default=600, help="the whole run, seconds")
    args = ap.parse_args()
    if args.n < 2 or args.rounds < 1:
        fail("--n must be >= 2 and --rounds >= 1")
    build = os.path.abspath(args.build_dir)
    ksv_bin = os.path.join(build, "src", "ksv")
    engine = os.path.join(build, "src", "ksv-engine")
    for f in [ksv_bin, engine]:
        if not os.path.exists(f):
            fail("%s is missing: build BUILD_DIR first (make)" % f)
    skip_unless_available()
    deadline = Deadline(args.timeout)

    # SIGTERM and SIGHUP unwind like Ctrl-C, through the finally below.
    def on_signal(signum, _frame):
        raise SystemExit("run-ssh-bench: signal %d" % signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    work = tempfile.mkdtemp(prefix="ksv-ssh-bench-")
    box = None
    engine_dir = os.path.join(work, "edge-engine")
    try:
        bench = build_bench(build, deadline)

        env = dict(os.environ, KSV_DB=os.path.join(work, "ksv.db"), HOME=work, USER="bench",
                   XDG_STATE_HOME=os.path.join(work, "state"), KSV_ENGINE=engine)
        env.pop("SSH_AUTH_SOCK", None)
        box = SshNode(work)
        if not box.start():
            fail("sshd did not start (see %s)" % box.log)
        node_args = box.node_args(engine, engine_dir, free_port())
        r = run([ksv_bin, "node", "add", "edge", box.address, "--trust-new"] + node_args,
                deadline, 120, env)
        if r.returncode != 0:
            fail("ksv node add: %s" % (r.stderr.strip() or r.stdout.strip()))
        spec = os.path.join(work, "churn.yaml")
        with open(spec, "w") as f:
            f.write("apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n"
                    "  name: churn\nspec:\n  predictor:\n    model:\n      modelFormat:\n"
                    "        name: xgboost\n      storageUri: %s/churn-v1/model.json\n"
                    % os.path.join(SRC, "data", "models"))
        r = run([ksv_bin, "apply", "-f", spec], deadline, 120, env)
        if r.returncode != 0:
            fail("ksv apply: %s" % (r.stderr.strip() or r.stdout.strip()))

        results = []
        for rnd in range(args.rounds):
            for keep in (0, 1):
                before = box.logins()
                r = run([bench, env["KSV_DB"], "edge", str(args.n), str(keep)], deadline,
                        args.n * 15 + 30, env)
                if r.returncode != 0:
                    fail("ssh_probe_bench KEEP=%d: %s" % (keep, r.stderr.strip()))
                res = json.loads(r.stdout)
                # sshd logs the login before the bench's dial returns; a tiny settle keeps the
                # count from missing the last line.
                time.sleep(0.2)
                res["logins"] = box.logins() - before
                res["round"] = rnd + 1
                results.append(res)
                print("round %d keep=%d: %s" % (rnd + 1, keep, json.dumps(res)), flush=True)

        # For scale: OpenSSH's own client running `true` on the same sshd (a fresh process,
        # TCP, key exchange, host key, public-key auth, one exec), median of 5.
        ssh_ref = None
        if shutil.which("ssh"):
            times = []
            for _ in range(5):
                t0 = time.monotonic()
                r = run(["ssh", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                         "-o", "UserKnownHostsFile=" + box.known_hosts,
                         "-o", "StrictHostKeyChecking=yes", "-i", box.key, "-p", str(box.port),
                         box.user + "@127.0.0.1", "true"],
                        deadline, 30, env)
                if r.returncode != 0:
                    times = []
                    print("run-ssh-bench: ssh reference failed: %s" % r.stderr.strip(),
                          file=sys.stderr)
                    break
                times.append((time.monotonic() - t0) * 1e3)
            if times:
                ssh_ref = statistics.median(times)

        try:
            load = os.getloadavg()
        except OSError:
            load = (float("nan"),) * 3
        print()
        print("probe of one SSH node (loopback sshd), %d probes a run; load %.2f %.2f %.2f"
              % (args.n, *load))
        print()
        print("| mode | round | first probe | mean | p50 | p99 | sshd logins | reachable |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for res in results:
            print("| %s | %d | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %d | %d/%d |"
                  % ("kept" if res["keep"] else "dialled", res["round"], res["first_ms"],
                     res["mean_ms"], res["p50_ms"], res["p99_ms"], res["logins"],
                     res["reachable"], res["n"]))

        def med(keep, key):
            return statistics.median(r[key] for r in results if r["keep"] == keep)
        d_mean, k_mean = med(0, "mean_ms"), med(1, "mean_ms")
        d_p50, k_p50 = med(0, "p50_ms"), med(1, "p50_ms")
        print()
        print("steady mean, median over rounds: dialled %.2f ms, kept %.2f ms: %.1fx"
              % (d_mean, k_mean, d_mean / k_mean if k_mean > 0 else float("inf")))
        print("steady p50, median over rounds:  dialled %.2f ms, kept %.2f ms: %.1fx"
              % (d_p50, k_p50, d_p50 / k_p50 if k_p50 > 0 else float("inf")))
        if ssh_ref is not None:
            print("for scale: OpenSSH `ssh NODE true` on the same sshd, median of 5: %.2f ms"
                  % ssh_ref)
        return 0
    finally:
        pid = lock_pid(engine_dir)
        if pid:
            stop_pid(pid)
        if box is not None:
            try:
                box.stop()
            except Exception as e:  # noqa: BLE001 - cleanup goes on
                print("run-ssh-bench: stopping sshd: %s" % e, file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
