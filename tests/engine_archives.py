"""Model archives over http://: .tar, .tar.gz, .tgz and .zip are unpacked into the engine's
cache and served; hostile ones are refused with a message that names the archive, the
entry and why, and leave nothing behind: a path that climbs (../x), an absolute path, a
symbolic link or hard link out of the folder, a device node, an entry that declares 10 GB
(zip and tar.gz, built cheaply from one compressed block of zeros repeated), and a zip
that declares 1 KiB but inflates to 10 GB (stopped by counting the bytes written, at
--max-model-size). A folder's digest (ksv.io/sha256) is the sha256 of its manifest, the
`sha256sum` lines of its files sorted by path; an archive's own digest is accepted too."""
import functools
import hashlib
import http.server
import io
import os
import struct
import tarfile
import threading
import time
import zipfile
import zlib

from ksvtest import DATA, Engine, check, finish, load_json, max_abs_diff, tmpdir

www = tmpdir("ksv-archives-")
with open(os.path.join(DATA, "models", "fraud", "model.json"), "rb") as f:
    fraud = f.read()
req = load_json("requests", "fraud.json")
expected = load_json("expected", "fraud.json")["data"]


def write(name, data):
    with open(os.path.join(www, name), "wb") as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest()


def tar_bytes(entries, mode="w"):
    """entries: (TarInfo fields..., data or None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.GNU_FORMAT) as t:
        for name, kind, data, link in entries:
            ti = tarfile.TarInfo(name)
            ti.type = kind
            ti.linkname = link or ""
            ti.mode = 0o644
            if kind == tarfile.REGTYPE:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
            else:
                t.addfile(ti)
    return buf.getvalue()


# --- good archives --------------------------------------------------------------------
write("plain.tar", tar_bytes([("model.json", tarfile.REGTYPE, fraud, None)]))
targz_digest = write("model.tar.gz", tar_bytes([("model.json", tarfile.REGTYPE, fraud, None),
                                                ("README", tarfile.REGTYPE, b"fraud v1\n", None)],
                                               "w:gz"))
write("nested.tgz", tar_bytes([("fraud/", tarfile.DIRTYPE, None, None),
                               ("fraud/model.json", tarfile.REGTYPE, fraud, None)], "w:gz"))
# A link that stays inside the folder is fine: it is stored as the file it names.
write("linked.tar", tar_bytes([("real/", tarfile.DIRTYPE, None, None),
                               ("real/weights.json", tarfile.REGTYPE, fraud, None),
                               ("model.json", tarfile.SYMTYPE, None, "real/weights.json")]))
zbuf = io.BytesIO()
with zipfile.ZipFile(zbuf, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("model/model.json", fraud)
write("model.zip", zbuf.getvalue())

# The folder digest of model.tar.gz's contents, as sha256sum would print it.
manifest = "".join("%s  %s\n" % (hashlib.sha256(d).hexdigest(), n)
                   for n, d in sorted([("model.json", fraud), ("README", b"fraud v1\n")]))
folder_digest = hashlib.sha256(manifest.encode()).hexdigest()

# --- hostile archives -----------------------------------------------------------------
write("climb.tar", tar_bytes([("model.json", tarfile.REGTYPE, fraud, None),
                              ("../x", tarfile.REGTYPE, b"escaped", None)]))
write("deepclimb.tgz", tar_bytes([("a/b/../../../x", tarfile.REGTYPE, b"escaped", None)], "w:gz"))
write("absolute.tar", tar_bytes([("/tmp/ksv-absolute-x", tarfile.REGTYPE, b"escaped", None)]))
write("symlink.tar", tar_bytes([("model.json", tarfile.SYMTYPE, None, "/etc/passwd")]))
write("symclimb.tar", tar_bytes([("sub/", tarfile.DIRTYPE, None, None),
                                 ("sub/up", tarfile.SYMTYPE, None, ".."),
                                 ("sub/model.json", tarfile.SYMTYPE, None, "up/../../x")]))
write("hardlink.tar", tar_bytes([("model.json", tarfile.LNKTYPE, None, "../../etc/passwd")]))
write("device.tar", tar_bytes([("model.json", tarfile.REGTYPE, fraud, None),
                               ("null", tarfile.CHRTYPE, None, None)]))
zbuf = io.BytesIO()
with zipfile.ZipFile(zbuf, "w") as z:
    z.writestr("../../x.json", b"{}")
write("climb.zip", zbuf.getvalue())


def deflate_zeros(total):
    """A raw deflate stream that inflates to `total` zero bytes: one compressed MiB of
    zeros, flushed so it depends on nothing before it, repeated; about 1 KB per MiB."""
    mib = 1 << 20
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = co.compress(b"\0" * mib) + co.flush(zlib.Z_FULL_FLUSH)
    return piece * (total // mib) + zlib.compressobj(9, zlib.DEFLATED, -15).flush()


def zip64(name, raw, declared):
    """One deflated entry with ZIP64 sizes; the CRC is never reached."""
    n = name.encode()
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 8, 0, 0x21, 0, 0xFFFFFFFF,
                        0xFFFFFFFF, len(n), 20) + n + struct.pack("<HHQQ", 1, 16, declared, len(raw))
    cd_off = len(local) + len(raw)
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 8, 0, 0x21, 0,
                          0xFFFFFFFF, 0xFFFFFFFF, len(n), 28, 0, 0, 0, 0, 0xFFFFFFFF) + n + \
        struct.pack("<HHQQQ", 1, 24, declared, len(raw), 0)
    z64_off = cd_off + len(central)
    end = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, 1, 1, len(central), cd_off)
    end += struct.pack("<IIQI", 0x07064B50, 0, z64_off, 1)
    end += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return local + raw + central + end


TEN_GB = 10 * (1 << 30)
bomb = deflate_zeros(TEN_GB)
write("bomb.zip", zip64("model.json", bomb, TEN_GB))
write("liar.zip", zip64("model.json", bomb, 1024))
# A tar that declares one 10 GB file, gzipped the same way: header + zeros.
hdr = tarfile.TarInfo("model.json")
hdr.size = TEN_GB
hdr_bytes = hdr.tobuf(format=tarfile.GNU_FORMAT)
co = zlib.compressobj(9, zlib.DEFLATED, -15)
head = co.compress(hdr_bytes) + co.flush(zlib.Z_FULL_FLUSH)
write("bomb.tar.gz", b"\x1f\x8b\x08\x00\0\0\0\0\x00\xff" + head + bomb[:-2] + b"\x03\x00" +
      struct.pack("<II", 0, 0))
check(os.path.getsize(os.path.join(www, "bomb.zip")) < 16 << 20,
      "the 10 GB zip is %d KB on disk" % (os.path.getsize(os.path.join(www, "bomb.zip")) >> 10))


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                         functools.partial(Quiet, directory=www))
threading.Thread(target=server.serve_forever, daemon=True).start()
base = "http://127.0.0.1:%d/" % server.server_address[1]

eng = Engine("--max-model-size", "64M")


def put(name, file, sha256=None):
    rev = {"name": name + "-00001", "storage_uri": base + file}
    if sha256:
        rev["sha256"] = sha256
    return eng.request("PUT", "/ksv/v1/models/" + name, {"revisions": [rev]}, admin=True)[0]



for name, file, sha in [("plain", "plain.tar", None), ("targz", "model.tar.gz", folder_digest),
                        ("tgz", "nested.tgz", None), ("zip", "model.zip", None),
                        ("linked", "linked.tar", None), ("archsum", "model.tar.gz", targz_digest)]:
    check(put(name, file, sha) == 202, "PUT %s" % file)
    r = eng.revision_settled(name)
    st, _, resp = eng.request("POST", "/v2/models/%s/infer" % name, req)
    check(r["state"] == "ready" and st == 200 and
          max_abs_diff(resp["outputs"][0]["data"], expected) <= 1e-6,
          "%s%s is unpacked, loaded and answers like XGBoost (%s %s)" %
          (file, " (sha256: the folder's manifest digest)" if sha == folder_digest else
           " (sha256: the archive's own digest)" if sha else "", r["state"], r.get("error", "")))

put("badsum", "model.tar.gz", "1" * 64)
r = eng.revision_settled("badsum")
check(r["state"] == "failed" and "sha256 mismatch" in r.get("error", ""),
      "a folder digest that does not match fails the revision (%s)" % r.get("error"))

t0 = time.time()
for name, file, why in [
        ("climb", "climb.tar", 'entry "../x": a path that climbs out of the folder (..); refused'),
        ("deepclimb", "deepclimb.tgz", "a path that climbs out of the folder"),
        ("absolute", "absolute.tar", 'entry "/tmp/ksv-absolute-x": an absolute path; refused'),
        ("symlink", "symlink.tar", 'entry "model.json": a link out of the folder; refused'),
        ("symclimb", "symclimb.tar", 'entry "sub/up": a link out of the folder; refused'),
        ("hardlink", "hardlink.tar", "a path that climbs out of the folder"),
        ("device", "device.tar", 'entry "null": not a file, folder or link; refused'),
        ("climbzip", "climb.zip", "a path that climbs out of the folder"),
        ("bombzip", "bomb.zip", "declares 10737418240 bytes"),
        ("bombtgz", "bomb.tar.gz", "declares 10737418240 bytes"),
        ("liar", "liar.zip", "unpacks to more than 67108864 bytes")]:
    put(name, file)
    r = eng.revision_settled(name)
    err = r.get("error", "")
    check(r["state"] == "failed" and why in err and base + file in err,
          "%s is refused: %s" % (file, err))
took = time.time() - t0
check(took < 30, "every hostile archive was refused in %.1f s" % took)
check(not os.path.exists("/tmp/ksv-absolute-x"), "nothing was written outside the folder")
cache = os.path.join(eng.state_dir, "cache")
check(os.listdir(os.path.join(cache, "staging")) == [], "no scratch folder is left in the cache")
stray = [os.path.join(d, f) for d, _, fs in os.walk(eng.state_dir) for f in fs if f in ("x", "x.json")]
check(not stray and not os.path.exists(os.path.join(eng.state_dir, "x")), "no escaped file (%s)" % stray)
check(eng.request("POST", "/v2/models/targz/infer", req)[0] == 200, "the engine kept serving")
check(eng.stop() == 0, "SIGTERM: exit 0")
finish()
