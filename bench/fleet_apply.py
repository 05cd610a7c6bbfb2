#!/usr/bin/env python3
"""bench/fleet_apply.py NODES MODELS: how long `ksv apply` takes to put MODELS iris models on
NODES engines (real ksv-engine processes on 127.0.0.1, --threads 1, registered as http://
nodes), next to the floor: the same loads sent straight to every engine's admin API from
this script (16 at once, like ksv's default --parallel) and waited for, with no ksv at all.
The difference is what ksv itself costs. Then a changed spec (a canary revision on every
model) and a reconcile that changes nothing.

Run from a build: KSV_ENGINE=build/src/ksv-engine python3 bench/fleet_apply.py 100 20"""
import concurrent.futures
import json
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
from fleetnodes import Fleet  # noqa: E402
from ksvtest import DATA  # noqa: E402


def floor_run(fleet, models, parallel=16):
    """PUT every model to every engine directly, then poll each engine until all apply."""
    uri = os.path.join(DATA, "models", "iris", "model.json")

    def one(name):
        for m in models:
            body = json.dumps({"revisions": [{"name": m + "-00001", "storage_uri": uri}],
                               "traffic": {m + "-00001": 100}})
            st, _ = fleet.admin(name, "PUT", "/ksv/v1/models/" + m, body)
            assert st in (200, 202), (name, m, st)
        while True:
            st, state = fleet.admin(name, "GET", "/ksv/v1/state")
            done = {x["name"] for x in state["models"] if x["traffic_applied"]}
            if all(m in done for m in models):
                return
            time.sleep(0.02)

    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(parallel) as ex:
        list(ex.map(one, fleet.names))
    took = time.time() - t0
    for name in fleet.names:
        for m in models:
            fleet.admin(name, "DELETE", "/ksv/v1/models/" + m)
    return took


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main():
    n_nodes = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    n_models = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    fleet = Fleet(n_nodes)
    try:
        bad = fleet.register()
        if bad:
            sys.exit("registering failed: %s" % bad[:3])
        floor = floor_run(fleet, ["f%02d" % i for i in range(n_models)])
        models = ["m%02d" % i for i in range(n_models)]
        first = fleet.manifest(os.path.join(fleet.work, "v1.yaml"), models, fleet.names)
        second = fleet.manifest(os.path.join(fleet.work, "v2.yaml"), models, fleet.names,
                                model_file="iris-ubj/model.ubj", canary=10)
        rows = []
        for what, args in (("apply (new models)", ("apply", "-f", first)),
                           ("apply (a canary revision each)", ("apply", "-f", second)),
                           ("reconcile (nothing changes)", ("reconcile",))):
            c0, t0 = children_cpu(), time.time()
            rc, out, err = fleet.ksv("--timeout", "300", *args, timeout=600)
            took, cpu = time.time() - t0, children_cpu() - c0
            if rc != 0:
                sys.exit("%s failed: %s" % (what, err[-500:]))
            rows.append((what, took, cpu))
        print("fleet: %d nodes x %d models (iris), engines --threads 1, loopback" % (n_nodes, n_models))
        print("  %-34s %6.1f s" % ("floor: the engines' own loads", floor))
        for what, took, cpu in rows:
            print("  %-34s %6.1f s   ksv CPU %.1f s" % ("ksv " + what, took, cpu))
    finally:
        fleet.close()


if __name__ == "__main__":
    main()
