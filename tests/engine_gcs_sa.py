"""gs:// with a service account key file (GOOGLE_APPLICATION_CREDENTIALS, issue 16): the
engine signs a JWT (RS256, OpenSSL's EVP API) with the key file's private key, exchanges it
at the key file's token_uri for an access token, and reads a private bucket with it.

Google itself cannot be reached from here (loopback only), so both ends are local: a token
endpoint that checks the assertion as Google's does (the jwt-bearer grant, the signature
verified by the openssl command against the key's public half, iss, aud, scope, iat/exp)
and answers a token, and a server laid out as Cloud Storage's JSON API that wants that
token. The key is made here with openssl. Failures name the key file, the token URI, the
status and the OAuth error."""
import base64
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse

from ksvtest import DATA, Engine, check, finish, load_json, max_abs_diff, tmpdir

if not shutil.which("openssl"):
    print("SKIP: the openssl command is not installed")
    sys.exit(77)

work = tmpdir("ksv-gcs-sa-")
key_pem = os.path.join(work, "key.pem")
pub_pem = os.path.join(work, "pub.pem")
subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", key_pem], check=True, capture_output=True)
subprocess.run(["openssl", "pkey", "-in", key_pem, "-pubout", "-out", pub_pem], check=True,
               capture_output=True)
with open(os.path.join(DATA, "models", "fraud", "model.json"), "rb") as f:
    fraud = f.read()
EMAIL = "ksv-reader@project.iam.gserviceaccount.com"
TOKEN = "ya29.local-test-token"
tokens_asked, media_auth = [], []
token_reply = {"status": 200}


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def verify(assertion, aud):
    """Why the assertion is refused ("" when good), checked as Google's token endpoint does."""
    parts = assertion.split(".")
    if len(parts) != 3:
        return "not a JWT"
    head, claims = json.loads(b64d(parts[0])), json.loads(b64d(parts[1]))
    data, sig = os.path.join(work, "jwt.data"), os.path.join(work, "jwt.sig")
    with open(data, "w") as f:
        f.write(parts[0] + "." + parts[1])
    with open(sig, "wb") as f:
        f.write(b64d(parts[2]))
    r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", pub_pem, "-signature", sig, data],
                       capture_output=True, text=True)
    now = time.time()
    if r.returncode != 0 or "Verified OK" not in r.stdout:
        return "bad signature"
    if head.get("alg") != "RS256" or head.get("kid") != "key-1":
        return "bad header %s" % head
    if claims.get("iss") != EMAIL or claims.get("aud") != aud:
        return "bad iss/aud %s" % claims
    if "devstorage" not in claims.get("scope", ""):
        return "bad scope"
    if not (claims["iat"] - 60 <= now <= claims["exp"]) or claims["exp"] - claims["iat"] > 3600:
        return "bad times"
    return ""


class Google(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        body = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        form = urllib.parse.parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
        if self.path != "/token":
            return self.reply(404, {"error": "not_found"})
        tokens_asked.append(form)
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            return self.reply(400, {"error": "unsupported_grant_type"})
        why = verify(form.get("assertion", [""])[0], base + "/token")
        if why:
            return self.reply(400, {"error": "invalid_grant", "error_description": why})
        if token_reply["status"] != 200:
            return self.reply(token_reply["status"], {"error": "invalid_grant",
                                                      "error_description": "Account disabled."})
        return self.reply(200, {"access_token": TOKEN, "expires_in": 3599, "token_type": "Bearer"})

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        parts = u.path.split("/")
        if not u.path.startswith("/storage/v1/b/private/o"):
            return self.reply(404, {"error": {"code": 404, "message": "No such bucket"}})
        if self.headers.get("Authorization") != "Bearer " + TOKEN:
            return self.reply(401, {"error": {"code": 401, "message": "Anonymous caller does not "
                                              "have storage.objects.get access."}})
        if len(parts) == 6:
            return self.reply(200, {"items": [{"name": "m/model.json", "size": str(len(fraud))},
                                              {"name": "m/README.md", "size": "6"}]})
        media_auth.append(self.headers.get("Authorization"))
        name = urllib.parse.unquote(parts[6])
        body = {"m/model.json": fraud, "m/README.md": b"fraud\n"}.get(name)
        if body is None:
            return self.reply(404, {"error": {"code": 404, "message": "No such object"}})
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Google)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
base = "http://127.0.0.1:%d" % server.server_address[1]


def key_file(name, **over):
    with open(key_pem) as f:
        doc = {"type": "service_account", "project_id": "project", "private_key_id": "key-1",
               "private_key": f.read(), "client_email": EMAIL, "client_id": "1",
               "token_uri": base + "/token"}
    doc.update(over)
    path = os.path.join(work, name)
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


req = load_json("requests", "fraud.json")
expected = load_json("expected", "fraud.json")["data"]


def engine(keyfile):
    return Engine(extra_env={"STORAGE_EMULATOR_HOST": base,
                             "GOOGLE_APPLICATION_CREDENTIALS": keyfile})


def settle(eng, name, uri):
    eng.request("PUT", "/ksv/v1/models/" + name,
                {"revisions": [{"name": name + "-00001", "storage_uri": uri}]}, admin=True)
    return eng.revision_settled(name)


eng = engine(key_file("sa.json"))
r = settle(eng, "priv", "gs://private/m")
st, _, resp = eng.request("POST", "/v2/models/priv/infer", req)
check(r["state"] == "ready" and st == 200 and max_abs_diff(resp["outputs"][0]["data"], expected) <= 1e-6,
      "gs://private/m with a service account key: fetched, loaded, answers like XGBoost (%s %s)"
      % (r["state"], r.get("error", "")))
check(len(tokens_asked) == 1, "one token for the whole fetch: listing and %d objects (%d asked)"
      % (len(media_auth), len(tokens_asked)))
check(len(media_auth) == 2 and all(a == "Bearer " + TOKEN for a in media_auth),
      "every object was read with the token from the token endpoint")
log = eng.log_text()
check(TOKEN not in log and "BEGIN PRIVATE KEY" not in log, "neither the token nor the key reaches the log")
eng.stop()

# Failures: each names what and why.
token_reply["status"] = 400
eng = engine(key_file("sa.json"))
r = settle(eng, "denied", "gs://private/m/model.json")
check(r["state"] == "failed" and "invalid_grant: Account disabled." in r.get("error", "") and
      base + "/token" in r.get("error", "") and "HTTP 400" in r.get("error", ""),
      "a refused grant names the token URI, the status and the OAuth error (%s)" % r.get("error"))
eng.stop()
token_reply["status"] = 200
other = os.path.join(work, "other.pem")
subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-out", other], check=True, capture_output=True)
with open(other) as f:
    wrong = key_file("wrong.json", private_key=f.read())
for name, path, want in [("wrongkey", wrong, "invalid_grant: bad signature"),
                         ("nofile", os.path.join(work, "missing.json"), "missing.json"),
                         ("badtype", key_file("user.json", type="authorized_user"), "not service_account"),
                         ("badpem", key_file("pem.json", private_key="-----BEGIN PRIVATE KEY-----\nAAAA\n"),
                          "not a PEM private key")]:
    eng = engine(path)
    r = settle(eng, name, "gs://private/m/model.json")
    check(r["state"] == "failed" and want in r.get("error", "") and "gs://private/m/model.json" in r.get("error", ""),
          "%s: the revision fails naming the URI and why (%s)" % (name, r.get("error")))
    eng.stop()
# An access token from the environment still wins over the key file.
eng = Engine(extra_env={"STORAGE_EMULATOR_HOST": base, "GOOGLE_APPLICATION_CREDENTIALS": wrong,
                        "GOOGLE_OAUTH_ACCESS_TOKEN": TOKEN})
asked = len(tokens_asked)
r = settle(eng, "envtoken", "gs://private/m/model.json")
check(r["state"] == "ready" and len(tokens_asked) == asked,
      "GOOGLE_OAUTH_ACCESS_TOKEN is used as is, before the key file (%s)" % r.get("error", ""))
check(eng.stop() == 0, "SIGTERM: exit 0")
server.shutdown()
finish()
