"""s3:// storage against a real S3-compatible server on 127.0.0.1: moto's server mode, with
authentication on (requests signed with SigV4 by libcurl, checked by moto) and an IAM user
and key pair the test creates. A single object; a prefix of 1,002 objects (ListObjectsV2
pages of 1,000, folder layout kept); credentials from a ~/.aws/credentials profile; a wrong
secret (403 and the S3 error code named); a missing key and a missing bucket (404); and a
16 MB object whose download breaks when the server goes away mid-transfer, resumed with a
Range request once it is back. moto and boto3 live in a venv outside the tree
(scripts/venv-s3.sh); without PyPI the test is skipped (77) and says so."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if not os.environ.get("KSV_S3_VENV"):
    r = subprocess.run(["sh", os.path.join(HERE, "..", "scripts", "venv-s3.sh")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print("SKIP: the moto venv could not be made:\n" + r.stderr[-2000:])
        sys.exit(77)
    os.environ["KSV_S3_VENV"] = "1"
    py = r.stdout.strip()
    os.execv(py, [py] + sys.argv)

import hashlib
import json
import select
import socket
import threading
import time

import boto3
from botocore.config import Config

from ksvtest import DATA, Engine, check, finish, free_port, load_json, max_abs_diff, tmpdir, _procs

# --- moto, with authentication from its fourth request on -------------------------------
port = free_port()
moto_env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3", AWS_DEFAULT_REGION="us-east-1")
moto_log = open(os.path.join(tmpdir("ksv-moto-"), "moto.log"), "wb")
moto = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "moto_server"),
                         "-H", "127.0.0.1", "-p", str(port)], stdout=moto_log, stderr=moto_log,
                        env=moto_env)
_procs.append(moto)
endpoint = "http://127.0.0.1:%d" % port
deadline = time.time() + 60
while time.time() < deadline:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        break
    except OSError:
        time.sleep(0.1)

cfg = Config(retries={"max_attempts": 1})
anon = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x",
            aws_secret_access_key="x", config=cfg)
iam = boto3.client("iam", **anon)
iam.create_user(UserName="ksv")
iam.put_user_policy(UserName="ksv", PolicyName="s3", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="ksv")["AccessKey"]
key_id, secret = key["AccessKeyId"], key["SecretAccessKey"]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key_id,
                  aws_secret_access_key=secret, config=cfg)
s3.create_bucket(Bucket="models")
with open(os.path.join(DATA, "models", "fraud", "model.json"), "rb") as f:
    fraud = f.read()
s3.put_object(Bucket="models", Key="fraud/model.json", Body=fraud)
s3.put_object(Bucket="models", Key="many/model.json", Body=fraud)
for i in range(1001):
    s3.put_object(Bucket="models", Key="many/notes/%04d.txt" % i, Body=b"note %d\n" % i)
# 16 MB that still loads: the model, then spaces (JSON allows trailing whitespace).
big = fraud + b" " * (16 * (1 << 20) - len(fraud))
s3.put_object(Bucket="models", Key="big/model.json", Body=big)
check(s3.list_objects_v2(Bucket="models", Prefix="many/")["IsTruncated"],
      "the server pages a listing of 1,002 objects")

req = load_json("requests", "fraud.json")
expected = load_json("expected", "fraud.json")["data"]
creds = {"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret,
         "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}
clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


def engine(env, *args):
    e = Engine(*args)
    e.stop()
    e.env = dict(clean, **env)
    e.start()
    return e


def put(eng, name, uri):
    body = {"revisions": [{"name": name + "-00001", "storage_uri": uri}]}
    return eng.request("PUT", "/ksv/v1/models/" + name, body, admin=True)[0]



def answers(eng, name):
    st, _, resp = eng.request("POST", "/v2/models/%s/infer" % name, req)
    return st == 200 and max_abs_diff(resp["outputs"][0]["data"], expected) <= 1e-6


eng = engine(creds)
put(eng, "one", "s3://models/fraud/model.json")
r = eng.revision_settled("one")
check(r["state"] == "ready" and answers(eng, "one"),
      "s3://models/fraud/model.json: fetched with SigV4, loaded, answers like XGBoost (%s %s)"
      % (r["state"], r.get("error", "")))

put(eng, "many", "s3://models/many")
r = eng.revision_settled("many", timeout=120)
check(r["state"] == "ready" and answers(eng, "many"),
      "s3://models/many: every object under the prefix (%s %s)" % (r["state"], r.get("error", "")))
trees = os.path.join(eng.state_dir, "cache", "trees")
manifests = [open(os.path.join(trees, m)).read().splitlines() for m in os.listdir(trees)
             if m.endswith(".manifest")]
biggest = max(manifests, key=len)
check(len(biggest) == 1002 and any(l.endswith("  notes/1000.txt") for l in biggest) and
      any(l.endswith("  model.json") for l in biggest),
      "all 1,002 objects across both listing pages, folder layout kept (%d files)" % len(biggest))

put(eng, "missing", "s3://models/nope/model.json")
r = eng.revision_settled("missing")
check(r["state"] == "failed" and "s3://models/nope/model.json" in r.get("error", "") and
      "no object" in r.get("error", ""), "a missing key fails with the URI (%s)" % r.get("error"))
put(eng, "nobucket", "s3://no-such-bucket/model.json")
r = eng.revision_settled("nobucket")
check(r["state"] == "failed" and "HTTP 404 NoSuchBucket" in r.get("error", ""),
      "a missing bucket: HTTP 404 and the S3 code (%s)" % r.get("error"))
eng.stop()

wrong = engine(dict(creds, AWS_SECRET_ACCESS_KEY="not-the-secret"))
put(wrong, "w", "s3://models/fraud/model.json")
r = wrong.revision_settled("w")
err = r.get("error", "")
check(r["state"] == "failed" and "s3://models/fraud/model.json" in err and "HTTP 403" in err and
      "SignatureDoesNotMatch" in err, "a wrong secret: the URI, HTTP 403 and the S3 code (%s)" % err)
check("not-the-secret" not in wrong.log_text(), "the secret is not in the engine's log")
wrong.stop()

home = tmpdir("ksv-aws-home-")
os.makedirs(os.path.join(home, ".aws"))
with open(os.path.join(home, ".aws", "credentials"), "w") as f:
    f.write("[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n"
            "[ksv]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (key_id, secret))
profiled = engine({"HOME": home, "AWS_PROFILE": "ksv", "S3_ENDPOINT": "127.0.0.1:%d" % port,
                   "S3_USE_HTTPS": "0", "AWS_REGION": "us-east-1"})
put(profiled, "prof", "s3://models/fraud/model.json")
r = profiled.revision_settled("prof")
check(r["state"] == "ready" and answers(profiled, "prof"),
      "credentials from ~/.aws/credentials [ksv] (AWS_PROFILE), S3_ENDPOINT without a scheme "
      "and S3_USE_HTTPS=0 (%s %s)" % (r["state"], r.get("error", "")))
profiled.stop()


# --- resume: a proxy in front of moto that trickles, then goes away mid-transfer ---------
class Proxy:
    """Relays 127.0.0.1:port to moto, at most `rate` bytes/s back, logging request heads."""

    def __init__(self, port, rate, cut_after=None):
        self.rate, self.cut_after, self.sent, self.heads = rate, cut_after, 0, []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        self.conns = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", port))
            self.conns += [c, up]
            threading.Thread(target=self.relay, args=(c, up), daemon=True).start()

    def relay(self, c, up):
        try:
            while not self.stop:
                r, _, _ = select.select([c, up], [], [], 0.1)
                if c in r:
                    data = c.recv(65536)
                    if not data:
                        return
                    self.heads.append(data.split(b"\r\n\r\n")[0].decode(errors="replace"))
                    up.sendall(data)
                if up in r:
                    data = up.recv(min(65536, self.rate // 10))
                    if not data:
                        return
                    c.sendall(data)
                    self.sent += len(data)
                    if self.cut_after and self.sent >= self.cut_after:
                        self.close()
                        return
                    time.sleep(len(data) / self.rate)
        except OSError:
            return
        finally:
            for s in (c, up):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self):
        self.stop = True
        for s in [self.sock] + self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass


# No credentials anywhere: requests go unsigned (for public buckets); this bucket is not.
watch = Proxy(0, 64 << 20)
anonymous = engine({"AWS_ENDPOINT_URL": "http://127.0.0.1:%d" % watch.port, "HOME": tmpdir()})
put(anonymous, "anon", "s3://models/fraud/model.json")
r = anonymous.revision_settled("anon")
check(watch.heads and not any("authorization:" in h.lower() for h in watch.heads),
      "no credentials: the requests go unsigned")
check(r["state"] == "failed" and "s3://models/fraud/model.json: HTTP " in r.get("error", ""),
      "and the private bucket's refusal is named (%s)" % r.get("error"))
anonymous.stop()
watch.close()

proxy = Proxy(0, 4 << 20, cut_after=6 << 20)
resumer = engine(dict(creds, AWS_ENDPOINT_URL="http://127.0.0.1:%d" % proxy.port))
put(resumer, "big", "s3://models/big/model.json")
r = resumer.revision_settled("big")
check(r["state"] == "failed" and "s3://models/big/model.json" in r.get("error", ""),
      "the server went away after %d bytes: the revision fails, naming the URI (%s)" %
      (proxy.sent, r.get("error")))
partial = os.path.join(resumer.state_dir, "cache", "partial")
kept = sum(os.path.getsize(os.path.join(partial, f)) for f in os.listdir(partial))
check(kept >= 4 << 20, "%d bytes are kept to resume from" % kept)
proxy2 = Proxy(proxy.port, 64 << 20)
put(resumer, "big", "s3://models/big/model.json")  # applying it again retries
r = resumer.revision_settled("big")
gets = [h for h in proxy2.heads if h.startswith("GET /models/big/model.json")]
check(r["state"] == "ready" and answers(resumer, "big"),
      "once the server is back the download finishes and the model loads (%s %s)" %
      (r["state"], r.get("error", "")))
check(len(gets) == 1 and ("range: bytes=%d-" % kept) in gets[0].lower(),
      "the second try asked only for the rest: Range: bytes=%d- (%s)" %
      (kept, gets[0].splitlines()[-3:] if gets else "no GET"))
check(proxy2.sent < len(big) - kept + (64 << 10),
      "and only the rest came back (%d of %d bytes)" % (proxy2.sent, len(big)))
blobs = os.listdir(os.path.join(resumer.state_dir, "cache", "blobs"))
check(hashlib.sha256(big).hexdigest() in blobs, "the resumed file is the object, byte for byte")
check(os.listdir(partial) == [], "the partial file is gone once complete")
check(resumer.stop() == 0, "SIGTERM: exit 0")
proxy2.close()
finish()
