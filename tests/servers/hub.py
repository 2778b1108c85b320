"""Stand-ins for the Hugging Face Hub on 127.0.0.1: ``HubRecorder`` records what ``muppet push``
commits, ``Hub`` serves model and dataset repositories for reading (see each class).

``HubRecorder`` answers the three calls ``HfApi.create_repo`` and ``HfApi.upload_folder`` make (as
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
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote

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


@dataclass
class Served:
    """One request the read hub answered: what was asked and with what status."""

    method: str
    path: str
    status: int
    range: str | None = None
    """The ``Range`` header of a partial read."""

    def line(self) -> str:
        """``GET /api/datasets/org/name/revision/main -> 200`` (with its range, where one was asked)."""
        return f"{self.method} {self.path} -> {self.status}" + (f" ({self.range})" if self.range else "")


@dataclass
class Repo:
    """One repository: its commits (sha -> path -> bytes, in the order pushed) and its branch ``main``."""

    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    main: str | None = None
    gated: bool = False


def git_blob_id(data: bytes) -> str:
    """A file's git blob id, as the hub gives it in a tree and as the ETag of a plain (non-LFS) file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Hub(Loopback):
    """A stand-in for the Hugging Face Hub's read API on 127.0.0.1: model and dataset repositories
    in the hub's layout, several commits each, ``main`` pointing at the latest one pushed.

    ``with Hub() as hub:`` serves on ``hub.url`` (``HF_ENDPOINT``) until the block ends;
    ``hub.push(kind, repo, files)`` adds a commit and moves ``main`` to it (its sha is a digest of
    the files and the parent, as a commit's is). It answers what ``huggingface_hub`` and ``datasets``
    send (as their source builds the URLs):

    - ``GET /api/{models,datasets}/<repo>[/revision/<rev>]``: the repo's info at a revision (``sha``, ``siblings``);
    - ``GET /api/<kind>s/<repo>/tree/<rev>[/<path>]``: the files under a folder (``recursive``);
    - ``POST /api/<kind>s/<repo>/paths-info/<rev>``: the entries of the ``paths`` named;
    - ``HEAD``/``GET /[datasets/]<repo>/resolve/<rev>/<path>``: a file, with ``X-Repo-Commit`` and an
      ``ETag``; a ``Range`` header gets a 206 with that slice.

    A revision is a sha, ``main`` or a unique sha prefix. ``hub.gate(repo)`` makes a repository answer
    401 (``GatedRepo``); an unknown repository, revision or file is a 404 with the hub's error codes;
    ``hub.fail_once(fragment)`` answers the next request whose path holds ``fragment`` with a 503;
    ``hub.slow(fragment)`` sends such files slowly, ``hub.cut_once(fragment, n)`` drops the
    connection after ``n`` bytes of the next one. Every request is recorded in ``hub.served``. Every file is a plain git blob (no Xet or LFS).
    """

    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], Repo] = {}
        self.served: list[Served] = []
        self._failing: list[str] = []
        self._slow: dict[str, tuple[int, float]] = {}
        self._cut: dict[str, int] = {}
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet: the test reads ``hub.served``
                pass

            def do_GET(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if self.command == "POST" else b""
                status, headers, data = hub.answer(self.command, self.path, body, self.headers.get("Range"))
                with hub._lock:
                    hub.served.append(Served(self.command, self.path, status, self.headers.get("Range")))
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(data))}.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command == "HEAD":
                    return
                cut = next((fragment for fragment in hub._cut if fragment in self.path and status == 200), None)
                if cut is not None:  # the connection drops midway: part of the body, then nothing
                    self.wfile.write(data[:hub._cut.pop(cut)])
                    self.close_connection = True
                    return
                pace = next((p for fragment, p in hub._slow.items() if fragment in self.path), None)
                if pace is None:
                    self.wfile.write(data)
                    return
                for start in range(0, len(data), pace[0]):  # a slow link: a chunk, then a pause
                    try:
                        self.wfile.write(data[start:start + pace[0]])
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):  # the client went away midway
                        return
                    time.sleep(pace[1])

            do_HEAD = do_POST = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    # -- what the hub holds --------------------------------------------------------------------

    def push(self, kind: str, repo: str, files: dict[str, bytes]) -> str:
        """Commit ``files`` (path -> bytes: the whole tree) to ``repo`` (``kind``: ``model`` or
        ``dataset``) and move its ``main`` there; returns the commit's sha."""
        entry = self.repos.setdefault((kind, repo), Repo())
        listing = "".join(f"{path}\0{git_blob_id(data)}\n" for path, data in sorted(files.items()))
        sha = hashlib.sha1(f"{entry.main}\n{listing}".encode()).hexdigest()
        entry.commits[sha] = dict(files)
        entry.main = sha
        return sha

    def push_folder(self, kind: str, repo: str, folder) -> str:
        """``push`` of every file under ``folder``."""
        root = Path(folder)
        return self.push(kind, repo, {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()})

    def gate(self, kind: str, repo: str) -> None:
        """Make ``repo`` gated: every call on it answers 401 (this client has accepted no terms)."""
        self.repos.setdefault((kind, repo), Repo()).gated = True

    def fail_once(self, fragment: str) -> None:
        """Answer the next request whose path holds ``fragment`` with a 503."""
        self._failing.append(fragment)

    def slow(self, fragment: str, chunk: int = 65536, pause: float = 0.05) -> None:
        """Send the body of every GET whose path holds ``fragment`` ``chunk`` bytes at a time, ``pause``
        seconds apart (a download a test can kill midway); ``slow(fragment, 0)`` ends it."""
        if chunk:
            self._slow[fragment] = (chunk, pause)
        else:
            self._slow.pop(fragment, None)

    def cut_once(self, fragment: str, after: int) -> None:
        """Drop the connection of the next full GET whose path holds ``fragment`` after ``after`` bytes of its body."""
        self._cut[fragment] = after

    def lines(self, since: int = 0) -> list[str]:
        """The request log from ``since`` on, one line per request."""
        return [s.line() for s in self.served[since:]]

    # -- answering ---------------------------------------------------------------------------------

    API = re.compile(r"^/api/(?P<kind>model|dataset)s/(?P<repo>[^/]+/[^/]+?)(?:/(?P<call>revision|tree|paths-info)/(?P<rev>[^/]+)(?:/(?P<path>.+))?)?$")
    RESOLVE = re.compile(r"^/(?:(?P<datasets>datasets)/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")

    def answer(self, method: str, url: str, body: bytes, byte_range: str | None) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body for one request."""
        path, _, query = url.partition("?")
        path = unquote(path)
        for fragment in list(self._failing):
            if fragment in path:
                self._failing.remove(fragment)
                return self._error(503, "", "the hub is briefly unavailable")
        if api := self.API.match(path):
            return self._api(api["kind"], api["repo"], api["call"], api["rev"] or "main", api["path"] or "", parse_qs(query), body)
        if resolve := self.RESOLVE.match(path):
            kind = "dataset" if resolve["datasets"] else "model"
            return self._resolve(kind, resolve["repo"], resolve["rev"], resolve["path"], byte_range)
        return self._error(404, "", f"not served here: {path}")

    @staticmethod
    def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": "application/json", "X-Error-Message": message, **({"X-Error-Code": code} if code else {})}
        return status, headers, json.dumps({"error": message}).encode()

    def _commit(self, kind: str, repo: str, rev: str) -> tuple[str, dict[str, bytes]] | tuple[int, dict[str, str], bytes]:
        """(sha, files) of ``rev`` in ``repo``, or the error to answer."""
        entry = self.repos.get((kind, repo))
        if entry is None or not entry.commits and not entry.gated:
            return self._error(404, "RepoNotFound", f"Repository Not Found for url: {kind}s/{repo}")
        if entry.gated:
            return self._error(401, "GatedRepo", f"Access to {kind} {repo} is restricted: you must have access to it and be authenticated to access it")
        rev = unquote(rev)
        shas = [entry.main] if rev == "main" else [s for s in entry.commits if s.startswith(rev)] if len(rev) >= 7 else []
        if len(shas) != 1:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        return shas[0], entry.commits[shas[0]]

    def _api(self, kind, repo, call, rev, sub, query, body) -> tuple[int, dict[str, str], bytes]:
        found = self._commit(kind, repo, rev)
        if isinstance(found[0], int):
            return found
        sha, files = found
        if call in (None, "revision"):
            answer = {"id": repo, "sha": sha, "private": False, "gated": False, "disabled": False,
                      "siblings": [{"rfilename": name} for name in files], "tags": [], "cardData": {}}
        elif call == "tree":
            prefix = f"{sub.strip('/')}/" if sub else ""
            recursive = query.get("recursive", ["false"])[0].lower() == "true"
            answer, folders = [], set()
            for name, data in files.items():
                if not name.startswith(prefix):
                    continue
                rest = name[len(prefix):]
                if "/" in rest and not recursive:
                    folders.add(prefix + rest.split("/")[0])
                    continue
                if recursive:
                    parts = rest.split("/")[:-1]
                    folders.update(prefix + "/".join(parts[: i + 1]) for i in range(len(parts)))
                answer.append({"type": "file", "path": name, "size": len(data), "oid": git_blob_id(data)})
            answer += [{"type": "directory", "path": f, "oid": hashlib.sha1(f.encode()).hexdigest()} for f in sorted(folders)]
            if prefix and not answer:
                return self._error(404, "EntryNotFound", f"{sub} does not exist at {rev}")
        else:  # paths-info
            wanted = parse_qs(body.decode()).get("paths", [])
            answer = [{"type": "file", "path": p, "size": len(files[p]), "oid": git_blob_id(files[p])} for p in wanted if p in files]
            answer += [{"type": "directory", "path": p, "oid": hashlib.sha1(p.encode()).hexdigest()}
                       for p in wanted if p not in files and any(n.startswith(p.rstrip("/") + "/") for n in files)]
        return 200, {"Content-Type": "application/json", "X-Repo-Commit": sha}, json.dumps(answer).encode()

    def _resolve(self, kind, repo, rev, name, byte_range) -> tuple[int, dict[str, str], bytes]:
        found = self._commit(kind, repo, rev)
        if isinstance(found[0], int):
            return found
        sha, files = found
        if name not in files:
            status, headers, data = self._error(404, "EntryNotFound", f"{name} does not exist at {rev}")
            return status, {**headers, "X-Repo-Commit": sha}, data
        data = files[name]
        headers = {"X-Repo-Commit": sha, "ETag": f'"{git_blob_id(data)}"', "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        if byte_range and (match := re.fullmatch(r"bytes=(\d+)-(\d*)", byte_range)):
            start, end = int(match[1]), int(match[2]) if match[2] else len(data) - 1
            end = min(end, len(data) - 1)
            return 206, {**headers, "Content-Range": f"bytes {start}-{end}/{len(data)}"}, data[start:end + 1]
        return 200, headers, data
