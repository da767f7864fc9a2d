"""fake_hub.py - a local stand-in for the Hugging Face hub, for download tests.

Serves, on 127.0.0.1 only, what `bitnet-gpu download` asks the hub for:
  HEAD/GET /{repo}/resolve/{rev}/{file}  302 to the "CDN" with X-Linked-Etag (the
                                         SHA-256, quoted), X-Linked-Size, X-Repo-Commit,
                                         a git-style ETag; 404 with X-Error-Code as the
                                         hub sends; 401 when a token is required
  GET /cdn/{repo}/{file}                 the bytes, with Range support (206)
  GET /api/models/{repo}/tree/{rev}      the tree listing, with lfs.oid and size
Knobs (attributes) make it misbehave the ways a download must survive: cut the
connection after N bytes, ignore Range, publish a wrong checksum, omit
X-Linked-Etag, require a token. Every request is logged for the tests to check.
"""
import hashlib
import http.server
import json
import socket
import threading


class FakeHub:
    def __init__(self):
        self.files = {}  # (repo, path) -> bytes
        self.token = None  # a bearer token the hub requires, or None
        self.cut_after = None  # send only this many body bytes of the next CDN response
        self.cuts_left = 0  # how many CDN responses to cut
        self.ignore_range = False
        self.wrong_sha = False  # publish a SHA-256 that is not the file's
        self.linked_etag = True  # False: no X-Linked-Etag (the tree API has the oid)
        self.lfs = True  # False: the file is not in LFS (no SHA-256 anywhere)
        self.cdn_host = "127.0.0.1"  # "localhost": another host name for curl
        self.revisions = {"main"}  # as they appear in a URL ("refs%2Fpr%2F1")
        self.log = []  # (method, path, headers dict)
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                hub._serve(self, body=False)

            def do_GET(self):
                hub._serve(self, body=True)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def add(self, repo, path, data):
        self.files[(repo, path)] = data

    def sha(self, data):
        digest = hashlib.sha256(data).hexdigest()
        return "0" * 64 if self.wrong_sha else digest

    def requests(self, prefix):
        return [(m, p, h) for (m, p, h) in self.log if p.startswith(prefix)]

    # ---- responses ------------------------------------------------------------
    def _send(self, h, status, headers, body=b"", send_body=True):
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if send_body:
            h.wfile.write(body)

    def _error(self, h, status, code, send_body):
        body = json.dumps({"error": code}).encode()
        self._send(h, status, {"X-Error-Code": code, "Content-Type": "application/json"}, body, send_body)

    def _serve(self, h, body):
        self.log.append((h.command, h.path, dict(h.headers)))
        parts = h.path.split("/")
        if h.path.startswith("/cdn/"):
            return self._cdn(h, "/".join(parts[2:4]), "/".join(parts[4:]), body)
        if h.path.startswith("/api/models/"):
            return self._tree(h, "/".join(parts[3:5]), body)
        if len(parts) >= 6 and parts[3] == "resolve":
            return self._resolve(h, "/".join(parts[1:3]), parts[4], "/".join(parts[5:]), body)
        self._error(h, 404, "RepoNotFound", body)

    def _resolve(self, h, repo, rev, path, body):
        if self.token and h.headers.get("Authorization") != f"Bearer {self.token}":
            return self._error(h, 401, "GatedRepo", body)
        if not any(r == repo for (r, _) in self.files):
            return self._error(h, 404, "RepoNotFound", body)
        if rev not in self.revisions:
            return self._error(h, 404, "RevisionNotFound", body)
        data = self.files.get((repo, path))
        if data is None:
            return self._error(h, 404, "EntryNotFound", body)
        headers = {
            "Location": f"http://{self.cdn_host}:{self.port}/cdn/{repo}/{path}",
            "X-Repo-Commit": "0123456789abcdef0123456789abcdef01234567",
            "ETag": '"' + hashlib.sha1(data).hexdigest() + '"',  # a git blob id, not the SHA-256
        }
        if self.lfs and self.linked_etag:
            headers["X-Linked-Etag"] = '"' + self.sha(data) + '"'
            headers["X-Linked-Size"] = str(len(data))
        self._send(h, 302, headers, b"", body)

    def _tree(self, h, repo, body):
        entries = []
        for (r, path), data in self.files.items():
            if r != repo:
                continue
            e = {"type": "file", "path": path, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
            if self.lfs:
                e["lfs"] = {"oid": self.sha(data), "size": len(data), "pointerSize": 134}
            entries.append(e)
        self._send(h, 200, {"Content-Type": "application/json"}, json.dumps(entries).encode(), body)

    def _cdn(self, h, repo, path, body):
        data = self.files.get((repo, path))
        if data is None:
            return self._error(h, 404, "EntryNotFound", body)
        start, status, headers = 0, 200, {"Accept-Ranges": "bytes"}
        rng = h.headers.get("Range")
        if rng and not self.ignore_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                return self._send(h, 416, {"Content-Range": f"bytes */{len(data)}"}, b"", body)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        chunk = data[start:]
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(chunk)))
        h.end_headers()
        if not body:
            return
        if self.cuts_left > 0:  # the connection drops midway
            self.cuts_left -= 1
            h.wfile.write(chunk[: self.cut_after])
            h.wfile.flush()
            h.connection.shutdown(socket.SHUT_RDWR)
            h.close_connection = True
            return
        h.wfile.write(chunk)


def unused_port():
    """A port on 127.0.0.1 with nothing listening (the server is gone)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
