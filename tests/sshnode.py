"""sshnode: a real OpenSSH sshd on 127.0.0.1 standing in for an edge box, for the SSH tests.

The test generates the host and user keys, writes an sshd_config that allows only that user
key, and starts sshd in the foreground (-D) logging to WORK/sshd.log, so a test can count
logins ("Accepted publickey" lines). stop() ends sshd and the per-connection children that
carry open sessions, as a cut link would. Everything it starts is stopped by PID or by the
unique config path, never by a broad pattern.
"""
import http.client
import os
import shutil
import signal
import subprocess
import sys
import time

from ksvtest import free_port

SSHD = "/usr/sbin/sshd"


def skip_unless_available():
    if not os.path.exists(SSHD) or not shutil.which("ssh-keygen"):
        print("SKIP: openssh-server is not installed")
        sys.exit(77)


def keygen(path, kind="ed25519"):
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", path], check=True,
                   stdin=subprocess.DEVNULL)


def local_user():
    return os.environ.get("LOGNAME") or subprocess.run(
        ["id", "-un"], capture_output=True, text=True).stdout.strip()


class SshNode:
    """sshd on a free loopback port with keys made in `work`."""

    def __init__(self, work):
        self.work = work
        self.user = local_user()
        for k in ("host_ed25519", "other_host", "user_key", "stranger_key"):
            keygen(os.path.join(work, k))
        shutil.copy(os.path.join(work, "user_key.pub"), os.path.join(work, "authorized_keys"))
        self.port = free_port()
        self.key = os.path.join(work, "user_key")
        self.known_hosts = os.path.join(work, "known_hosts")
        open(self.known_hosts, "w").close()
        self.log = os.path.join(work, "sshd.log")
        self.bin = os.path.join(work, "node-bin")
        os.makedirs(self.bin, exist_ok=True)
        self.unit_dir = os.path.join(work, "node-units")
        self.conf = os.path.join(work, "sshd_config")
        with open(self.conf, "w") as f:
            f.write("ListenAddress 127.0.0.1\nHostKey %s/host_ed25519\n"
                    "AuthorizedKeysFile %s/authorized_keys\nStrictModes no\nUsePAM no\n"
                    "PidFile %s/sshd.pid\nPermitRootLogin prohibit-password\n"
                    "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                    "MaxSessions 64\nSubsystem sftp internal-sftp\n"
                    # The node's PATH: our own bin first (a test can shadow a command there,
                    # e.g. uname), and no /usr/local, so a ksv-engine installed on this machine
                    # does not stand in for the one a test expects ksv to find or install.
                    # and --install's systemd unit goes under work, never into the
                    # machine's /etc/systemd/system or ~/.config/systemd/user.
                    "SetEnv PATH=%s:/usr/bin:/bin KSV_UNIT_DIR=%s\n"
                    % (work, work, work, self.bin, self.unit_dir))
        os.makedirs("/run/sshd", exist_ok=True)
        self.proc = None
        self.address = "ssh://%s@127.0.0.1:%d" % (self.user, self.port)

    def start(self):
        """Starts sshd; True once it accepts connections (within 10 s)."""
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", self.conf, "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"))
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                c.connect()
                c.close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self):
        """Stops sshd and the children that carry its open sessions, as a cut would.

        Only this sshd's own descendants: tests run in parallel, each with its own sshd, and
        killing every "sshd: USER" process would cut the other tests' links too."""
        if not self.proc or self.proc.poll() is not None:
            return
        children = _descendants(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.proc.wait(10)

    def logins(self):
        """How many logins sshd has accepted so far."""
        try:
            with open(self.log, errors="replace") as f:
                return sum(1 for line in f if "Accepted publickey" in line)
        except OSError:
            return 0

    def node_args(self, engine, engine_dir, engine_port, known_hosts=None, key=None):
        """The `ksv node add` options for this box (engine None: no --engine-path)."""
        return (["--identity", key or self.key, "--known-hosts", known_hosts or self.known_hosts]
                + (["--engine-path", engine] if engine else [])
                + ["--engine-state-dir", engine_dir, "--engine-port", str(engine_port)])


def _descendants(root):
    """PIDs of every process below root, from /proc (children before they can re-parent)."""
    parent = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
            # The command may hold spaces and parentheses: the fields follow the last ')'.
            parent[int(entry)] = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            pass
    found, frontier = [], [root]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        found += kids
        frontier += kids
    return found
