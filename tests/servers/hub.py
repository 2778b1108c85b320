"""A recording stand-in for the Hugging Face Hub's commit API, on 127.0.0.1, for `muppet push`.

It answers the three calls ``HfApi.create_repo`` and ``HfApi.upload_folder`` make (as
huggingface_hub sends them: ``POST /api/repos/create``, ``POST /api/validate-yaml`` for a README.md,
``POST /api/models/<repo>/preupload/<rev>``, ``POST /api/models/<repo>/commit/<rev>`` with an NDJSON
body) and records every request: method, path, headers, body, and the files each commit carried.
The README's metadata is validated as the Hub's model cards are parsed (``huggingface_hub.ModelCard``):
a card that does not parse gets a 400 with the reason. Every file is taken as a regular git blob
(base64 in the commit), so no Xet or LFS storage is involved; any other call gets a 404 and is
recorded too, so a test sees it.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from huggingface_hub import ModelCard

REPO_CALL = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/(?P<call>preupload|commit)/(?P<rev>[^/?]+)")


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes


@dataclass
class Recorded:
    requests: list[Request] = field(default_factory=list)
    repos: list[dict] = field(default_factory=list)
    files: dict[str, dict[str, bytes]] = field(default_factory=dict)
    """Repository -> path in it -> the bytes committed."""


class Loopback:
    """A ``ThreadingHTTPServer`` (``self.server``) that serves in a thread while a ``with`` block runs."""

    server: ThreadingHTTPServer

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class HubRecorder(Loopback):
    """``with HubRecorder() as hub:`` serves on ``hub.url`` until the block ends; ``hub.recorded``."""

    def __init__(self) -> None:
        self.recorded = Recorded()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet: the test reads the records
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.recorded.requests.append(Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                status, answer = recorder.answer(self.path, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self.do_POST()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, path: str, body: bytes) -> tuple[int, dict]:
        if path == "/api/repos/create":
            payload = json.loads(body)
            self.recorded.repos.append(payload)
            return 200, {"url": f"{self.url}/{payload['organization']}/{payload['name']}"}
        if path == "/api/validate-yaml":
            try:
                ModelCard(json.loads(body)["content"])
            except ValueError as exc:
                return 400, {"errors": [{"message": str(exc)}]}
            return 200, {"errors": [], "warnings": []}
        call = REPO_CALL.match(path)
        if call and call["call"] == "preupload":
            files = json.loads(body)["files"]
            return 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
        if call and call["call"] == "commit":
            received = self.recorded.files.setdefault(call["repo"], {})
            for line in body.splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    received[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            oid = f"{len(self.recorded.requests):040x}"
            return 200, {"commitUrl": f"{self.url}/{call['repo']}/commit/{oid}", "commitOid": oid}
        return 404, {"error": f"not served here: {path}"}


class HubMirror(Loopback):
    """A read-only stand-in for the Hub's download API on 127.0.0.1: ``with HubMirror({"org/tiny": folder}) as hub:``
    serves each folder's files as that model repository's, at one commit, until the block ends.

    It answers what ``huggingface_hub.snapshot_download`` asks (as it sends them: ``GET
    /api/models/<repo>/revision/<rev>``, ``GET /api/models/<repo>/tree/<commit>`` and, per file,
    ``HEAD`` and ``GET /<repo>/resolve/<commit>/<path>``); every file is a plain git blob, no Xet or
    LFS storage. ``hub.requests`` lists the paths asked for, a call it does not serve answered 404.
    """

    COMMIT = "0123456789abcdef0123456789abcdef01234567"

    def __init__(self, repos: dict[str, str]) -> None:
        from pathlib import Path

        self.files = {repo: {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}
                      for repo, folder in repos.items()}
        self.requests: list[str] = []
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet: the test reads the requests
                pass

            def do_GET(self) -> None:
                mirror.requests.append(self.path)
                status, headers, body = mirror.answer(self.path.split("?")[0])
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(body)

            do_HEAD = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @staticmethod
    def _blob_id(data: bytes) -> str:
        import hashlib

        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()

    def answer(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body of a GET of ``path``."""
        as_json = {"Content-Type": "application/json"}
        info = re.match(r"^/api/models/(?P<repo>[^/]+/[^/]+)/(?P<call>revision|tree)/[^/]+$", path)
        if info and info["repo"] in self.files:
            files = self.files[info["repo"]]
            if info["call"] == "revision":
                body = {"id": info["repo"], "sha": self.COMMIT, "siblings": [{"rfilename": name} for name in files]}
            else:
                body = [{"type": "file", "path": name, "size": len(data), "oid": self._blob_id(data)} for name, data in files.items()]
            return 200, as_json, json.dumps(body).encode()
        resolve = re.match(rf"^/(?P<repo>[^/]+/[^/]+)/resolve/{self.COMMIT}/(?P<name>.+)$", path)
        if resolve and resolve["name"] in self.files.get(resolve["repo"], {}):
            data = self.files[resolve["repo"]][resolve["name"]]
            return 200, {"X-Repo-Commit": self.COMMIT, "ETag": f'"{self._blob_id(data)}"'}, data
        return 404, {**as_json, "X-Error-Code": "EntryNotFound"}, json.dumps({"error": f"not served here: {path}"}).encode()
