"""tmuxterm: drives a terminal program inside a private tmux server, for the console tests
(send-keys in, capture-pane out). The server has its own socket, so tests never touch the
user's tmux, and kill() ends it with everything it runs."""
import os
import subprocess
import time


class Tmux:
    """A private tmux server (its own socket) running one program in window `top`."""

    def __init__(self, name):
        self.socket = "%s%d" % (name, os.getpid())

    def run(self, *args):
        r = subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null"] + list(args),
                           capture_output=True, text=True)
        return r.stdout

    def start(self, argv, env, cols=120, lines=32):
        """Runs argv in a detached session, with the variables of `env` set for it."""
        cmd = "env %s %s" % (" ".join("%s=%s" % (k, _sh(v)) for k, v in sorted(env.items())),
                             " ".join(_sh(a) for a in argv))
        self.run("new-session", "-d", "-s", "top", "-x", str(cols), "-y", str(lines), cmd)

    def keys(self, *keys):
        self.run("send-keys", "-t", "top", *keys)

    def screen(self):
        return self.run("capture-pane", "-p", "-t", "top")

    def wait_for(self, pred, timeout=15.0):
        """Polls the screen until pred(text) holds; returns the last screen."""
        deadline = time.time() + timeout
        text = self.screen()
        while time.time() < deadline:
            if pred(text):
                return text
            time.sleep(0.2)
            text = self.screen()
        return text

    def kill(self):
        self.run("kill-server")


def _sh(s):
    return "'" + str(s).replace("'", "'\\''") + "'"
