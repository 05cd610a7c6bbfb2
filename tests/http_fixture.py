"""http_fixture.py: a real HTTP(S) server on loopback for tests/test_http_client.c.

Prints "PORT N" once it listens, serves until its stdin closes (the test's end), then exits.
With --tls CERT KEY it speaks https. Routes:
  GET /ok                  200 "hello"
  GET /big                 200, 1000 bytes of "x" with a Content-Length
  GET /chunked?n=N         200, N bytes of "y", chunked in pieces of 100
  GET /slow                sleeps 3 s, then 200
  GET /redirect?to=URL     302 to URL
  GET /status/404          404 "nope"
  any /echo                200: the method, the X-Test, Expect and Content-Type headers
                           it got ("-" when absent), then the body it got
"""
import os
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def route(self):
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n) if n else b""  # read on every route: keep-alive goes on
        if url.path == "/echo":
            head = "%s\n%s\n%s\n%s\n" % (self.command, self.headers.get("X-Test", "-"),
                                         self.headers.get("Expect", "-"),
                                         self.headers.get("Content-Type", "-"))
            return self.send(200, head.encode() + body)
        if url.path == "/ok":
            return self.send(200, b"hello")
        if url.path == "/big":
            return self.send(200, b"x" * 1000)
        if url.path == "/chunked":
            n = int(q.get("n", ["0"])[0])
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while n > 0:
                k = min(n, 100)
                self.wfile.write(b"%x\r\n%s\r\n" % (k, b"y" * k))
                n -= k
            self.wfile.write(b"0\r\n\r\n")
            return None
        if url.path == "/slow":
            time.sleep(3)
            return self.send(200, b"late")
        if url.path == "/redirect":
            return self.send(302, b"", [("Location", q["to"][0])])
        if url.path == "/status/404":
            return self.send(404, b"nope")
        return self.send(400, b"unknown route")

    do_GET = do_POST = do_PUT = do_DELETE = route


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client that stops reading (a cap, a cancel) is what some tests do


def main():
    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if len(sys.argv) == 4 and sys.argv[1] == "--tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("PORT %d" % server.server_address[1], flush=True)
    sys.stdin.read()
    os._exit(0)


# Only when run: engine_resume.py and cli_redact.py import Handler, and main() there would
# print a port and exit the importing test at once, passing it without a check.
if __name__ == "__main__":
    main()
