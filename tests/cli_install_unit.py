"""`ksv node add ... --install` puts ksv-engine under systemd on an SSH node (a real OpenSSH
sshd on 127.0.0.1), so the engine comes back after a reboot with its applied state.

What is real and what is simulated: sshd, the upload, the unit file written on the node
(checked with `systemd-analyze verify` where it is installed, and against
contrib/systemd/ksv-engine.service directive by directive), the engine and its state. systemd
does not run in this container (no PID 1 manager, no user bus), so:
  1. as it is here: systemctl cannot reach a manager; ksv writes the unit, says it is not
     enabled and why, and starts the engine the plain way;
  2. SIMULATED systemd: a stand-in `systemctl` and `loginctl` on the node's PATH record
     their arguments, and `enable --now` starts the unit's ExecStart line as systemd
     would; a stand-in `id -u` answers 1000 so the user-unit path (systemctl --user,
     enable-linger) is taken. A "reboot" is kill -9 of the engine and the stand-in starting
     the enabled unit's ExecStart again: the model applied before serves again.
The unit directory is the harness's KSV_UNIT_DIR (under the test's folder), never the
machine's /etc/systemd/system or ~/.config/systemd/user."""
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import time

from ksvtest import DATA, ENGINE, check, finish, free_port, ksv_cli, lock_pid, tmpdir
from sshnode import SshNode, skip_unless_available

skip_unless_available()

work = tmpdir("ksv-unit-")
env = dict(os.environ, KSV_DB=os.path.join(work, "ksv.db"), HOME=work, USER="tester",
           XDG_STATE_HOME=os.path.join(work, "state"), KSV_ENGINE=ENGINE)
env.pop("SSH_AUTH_SOCK", None)
box = SshNode(work)
ksv, ksv_json = ksv_cli(env)
unit_path = os.path.join(box.unit_dir, "ksv-engine.service")
with open(ENGINE, "rb") as f:
    installed_name = hashlib.sha256(f.read()).hexdigest()


def directives(text):
    """(section, key) -> value of a unit file, comments and blank lines left out."""
    out, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        k, _, v = line.partition("=")
        out[(section, k)] = v
    return out


def exec_start(path):
    with open(path) as f:
        return directives(f.read())[("[Service]", "ExecStart")]


def alive(pid):
    """Whether pid runs (a zombie, which nothing may reap here, does not)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def stop_engine(state_dir):
    """SIGKILL to the state dir's engine; its pid once it is gone."""
    pid = lock_pid(state_dir)
    if pid:
        os.kill(pid, signal.SIGKILL)
        deadline = time.time() + 10
        while alive(pid) and time.time() < deadline:
            time.sleep(0.05)
    return pid


try:
    check(box.start(), "sshd runs on 127.0.0.1:%d" % box.port)

    # 1. No systemd (this container as it is).
    dir_a, port_a = os.path.join(work, "engine-a"), free_port()
    rc, out, err = ksv("node", "add", "edge-a", box.address, "--install", "--trust-new",
                       *box.node_args(None, dir_a, port_a))
    check(rc == 0 and "added" in out, "node add --install on a node without systemd succeeds (%s)" % err.strip()[-300:])
    check("systemd unit written to %s but not enabled" % unit_path in out and "will not come back" in out,
          "it says the unit was written but not enabled, and what that means (%s)" % out.strip()[-300:])
    want = "%s/bin/%s --listen 127.0.0.1:%d --state-dir %s" % (dir_a, installed_name, port_a, dir_a)
    check(os.path.exists(unit_path) and exec_start(unit_path) == want,
          "the unit runs the installed engine on the node's port and state dir (%s)"
          % (exec_start(unit_path) if os.path.exists(unit_path) else "no unit"))
    with open(unit_path) as f:
        written = directives(f.read())
    with open(os.path.join(os.environ.get("KSV_SRCDIR", "."), "contrib/systemd/ksv-engine.service")) as f:
        contrib = directives(f.read())
    skip = {("[Service]", "ExecStart"), ("[Service]", "StateDirectory"), ("[Service]", "StateDirectoryMode")}
    check({k: v for k, v in written.items() if k not in skip} == {k: v for k, v in contrib.items() if k not in skip},
          "every other directive is contrib/systemd/ksv-engine.service's")
    if shutil.which("systemd-analyze"):
        r = subprocess.run(["systemd-analyze", "verify", unit_path], capture_output=True, text=True)
        check(r.returncode == 0 and not (r.stdout + r.stderr).strip(),
              "systemd-analyze verify accepts the written unit (%s)" % (r.stdout + r.stderr).strip()[:300])
    check(lock_pid(dir_a) is not None, "the engine runs (started without systemd)")
    rc, st = ksv_json("node", "status", "edge-a")
    check(rc == 0 and st[0]["reachable"], "and answers through SSH")
    check(ksv("node", "rm", "edge-a")[0] == 0, "node rm edge-a")
    stop_engine(dir_a)

    # 2. SIMULATED systemd, user unit (see the docstring).
    calls = os.path.join(work, "systemd-calls")
    with open(os.path.join(box.bin, "systemctl"), "w") as f:
        f.write("#!/bin/sh\n"
                "echo \"systemctl $*\" >>%s\n"
                "case \" $* \" in *' enable '*--now*|*--now*' enable '*)\n"
                "  line=$(sed -n 's/^ExecStart=//p' \"$KSV_UNIT_DIR/ksv-engine.service\")\n"
                "  cd / && setsid $line >/dev/null 2>&1 </dev/null & ;;\n"
                "esac\nexit 0\n" % shlex.quote(calls))
    with open(os.path.join(box.bin, "loginctl"), "w") as f:
        f.write("#!/bin/sh\necho \"loginctl $*\" >>%s\nexit 0\n" % shlex.quote(calls))
    with open(os.path.join(box.bin, "id"), "w") as f:
        f.write("#!/bin/sh\n[ \"$1\" = -u ] && { echo 1000; exit 0; }\nexec /usr/bin/id \"$@\"\n")
    for name in ("systemctl", "loginctl", "id"):
        os.chmod(os.path.join(box.bin, name), 0o755)
    dir_b, port_b = os.path.join(work, "engine-b"), free_port()
    rc, out, err = ksv("node", "add", "edge-b", box.address, "--install", *box.node_args(None, dir_b, port_b))
    check(rc == 0 and "systemd unit %s enabled, lingering and started" % unit_path in out,
          "with systemd: the unit is enabled, lingering, and systemd started the engine (%s)" % (out + err).strip()[-300:])
    with open(calls) as f:
        seen = f.read().splitlines()
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    check(seen == ["systemctl --user daemon-reload", "systemctl --user enable --now ksv-engine.service",
                   "loginctl enable-linger %s" % user],
          "a user unit: reload, enable --now, linger, in that order (%s)" % seen)
    pid = lock_pid(dir_b)
    exe = os.path.realpath("/proc/%d/exe" % pid) if pid else None
    check(exe == os.path.realpath(os.path.join(dir_b, "bin", installed_name)),
          "the engine systemd started is the installed one (%s)" % exe)
    manifest = os.path.join(work, "m.yaml")
    with open(manifest, "w") as f:
        f.write("apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: iris\n"
                "spec:\n  predictor:\n    model:\n      modelFormat:\n        name: xgboost\n"
                "      storageUri: %s/models/iris/model.json\n" % DATA)
    rc, _, err = ksv("apply", "-f", manifest, "--node", "edge-b")
    check(rc == 0, "a model applied to edge-b (%s)" % err.strip()[-200:])

    # A reboot: the engine dies, and systemd starts the enabled unit again.
    gone = stop_engine(dir_b)
    check(gone and not alive(gone), "the engine is gone (kill -9)")
    line = exec_start(unit_path)
    subprocess.Popen(shlex.split(line), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True, cwd="/")
    deadline, back = time.time() + 20, False
    while time.time() < deadline and not back:
        rc, st = ksv_json("node", "status", "edge-b")
        back = rc == 0 and st[0]["reachable"] and not st[0]["drift"]
        time.sleep(0.2)
    check(back, "after the reboot the engine answers with its applied state: no drift")
    with open(os.path.join(dir_b, "token")) as f:
        token = f.read().strip()
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port_b, timeout=10)
    c.request("POST", "/v2/models/iris/infer", body=json.dumps(
        {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [6.8, 2.8, 4.8, 1.4]}]}),
        headers={"Content-Type": "application/json"})
    r = c.getresponse()
    check(r.status == 200 and "outputs" in json.loads(r.read()), "iris serves again after the reboot")
    c.close()

    # A path a unit line would have to escape is refused before anything is written.
    os.remove(unit_path)
    rc, _, err = ksv("node", "add", "edge-c", box.address, "--install",
                     *box.node_args(None, os.path.join(work, "engine c%n"), free_port()))
    check(rc == 1 and "cannot go in a systemd unit" in err and not os.path.exists(unit_path),
          "a state dir with a space and %% is refused, no unit written (%s)" % err.strip()[-200:])
    rc, nodes = ksv_json("node", "ls")
    check(rc == 0 and [n["name"] for n in nodes] == ["edge-b"], "edge-c was not added")
finally:
    for d in ("engine-a", "engine-b", "engine c%n"):
        pid = lock_pid(os.path.join(work, d))
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    box.stop()
finish()
