"""A stand-in for the Hugging Face hub: a real HTTP server on 127.0.0.1 serving repos from local folders.

It speaks the part of the hub API that huggingface_hub 2.4.0's `snapshot_download` and
`hf_hub_download` use (point HF_ENDPOINT at `FakeHub.url`):

    GET  /api/models/{repo}[/revision/{rev}]      repo info: {"id", "sha", "siblings", ...}; ?blobs=true
                                                  adds each file's size, blobId and lfs
    GET  /api/models/{repo}/tree/{rev}[/{path}]   file list (?recursive=; expand is ignored, one page)
    HEAD /{repo}/resolve/{rev}/{file}             ETag, X-Repo-Commit, Content-Length
    GET  /{repo}/resolve/{rev}/{file}             the bytes; `Range: bytes=N-` answers 206
    GET  /api/models?search=&author=&sort=&direction=&limit=&expand=...
                                                  the listing `HfApi.list_models` asks for: `FakeHub.listing`'s
                                                  entries whose id contains search (any case) and whose owner is
                                                  author, sorted by that key (descending; direction=1: ascending),
                                                  each with only its id and the expanded keys; one page

Errors carry the `X-Error-Code` header huggingface_hub turns into exceptions (RepoNotFound,
RevisionNotFound, EntryNotFound: 404; GatedRepo: 401). No Xet headers are ever sent, so clients
download over plain HTTP. `hub.faults` injects failures per test; `hub.requests` logs every request.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

COMMIT = hashlib.sha1(b"fake hub commit").hexdigest()  # one stable revision for every repo
HANG_LIMIT = 60.0  # seconds a hung request waits at most, so no thread outlives a forgotten test
LFS_SUFFIXES = (".safetensors",)  # what mlx-community's .gitattributes stores in LFS
API = re.compile(r"/api/models/(?P<repo>[^/]+/[^/]+)(?:/(?P<kind>revision|tree)/(?P<rev>[^/]+)(?:/(?P<path>.+))?)?")
RESOLVE = re.compile(r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)")


class Request(NamedTuple):
    method: str
    path: str
    status: int | None  # None: hung, never answered
    bytes: int  # body bytes sent


@dataclass
class Fault:
    kind: str  # "500", "drop", "stall" or "hang"
    glob: str
    times: int | None  # None: every matching request
    method: str | None = None
    after_bytes: int = 0


class Faults:
    """What goes wrong, set per test. Globs match the request path, e.g. "*/resolve/*/config.json"."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: list[Fault] = []
        self.gated_repos: set[str] = set()
        self.missing: list[str] = []

    def fail_500(self, glob: str, times: int | None = 1, method: str | None = None) -> None:
        self._add(Fault("500", glob, times, method))

    def drop_connection(self, glob: str, after_bytes: int = 0, times: int | None = 1) -> None:
        """Answer a GET with the full Content-Length, send `after_bytes` of the body, then close the socket."""
        self._add(Fault("drop", glob, times, "GET", after_bytes))

    def stall(self, glob: str, after_bytes: int = 0, times: int | None = None) -> None:
        """Answer a GET with the full Content-Length, send `after_bytes` of the body, then nothing more
        (until the hub stops or HANG_LIMIT passes), keeping the connection open."""
        self._add(Fault("stall", glob, times, "GET", after_bytes))

    def hang(self, glob: str, times: int | None = None, method: str | None = None) -> None:
        """Accept the request and never answer (until the hub stops or HANG_LIMIT passes)."""
        self._add(Fault("hang", glob, times, method))

    def gated(self, repo: str) -> None:
        """Repo info and listing stay public, as on the hub; every file answers 401 GatedRepo."""
        self.gated_repos.add(repo)

    def missing_file(self, path_glob: str) -> None:
        """Files (repo-relative) that the hub does not have: absent from listings, 404 EntryNotFound."""
        self.missing.append(path_glob)

    def clear(self) -> None:
        """Back to a healthy hub (gates stay)."""
        with self._lock:
            self._active.clear()

    def is_missing(self, path: str) -> bool:
        return any(fnmatch.fnmatch(path, glob) for glob in self.missing)

    def _add(self, fault: Fault) -> None:
        with self._lock:
            self._active.append(fault)

    def take(self, method: str, path: str) -> Fault | None:
        """The first fault for this request, counting it down."""
        with self._lock:
            for fault in self._active:
                if fault.method in (None, method) and fnmatch.fnmatch(path, fault.glob):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times == 0:
                            self._active.remove(fault)
                    return fault
        return None


class _Blob(NamedTuple):
    size: int
    oid: str  # git blob sha1, what the tree listing calls "oid"
    sha256: str


class FakeHub:
    def __init__(self, repos: dict[str, Path], listing: list[dict] | None = None) -> None:
        self.repos = {repo: Path(folder) for repo, folder in repos.items()}
        self.listing = list(listing or [])  # the hub's model entries, as the API spells their keys
        self.listing_queries: list[dict[str, list[str]]] = []  # each /api/models request's query, parsed
        self.faults = Faults()
        self.requests: list[Request] = []
        self._blobs: dict[Path, _Blob] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server, "the hub is not started"
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> FakeHub:
        handler = type("Handler", (_Handler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes hung handlers
        if self._server:
            self._server.shutdown()
            self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def hits(self, glob: str, method: str | None = None) -> list[Request]:
        """Logged requests whose path matches glob (and method, if given)."""
        return [r for r in self.requests if method in (None, r.method) and fnmatch.fnmatch(r.path, glob)]

    def files(self, repo: str) -> list[str]:
        """Repo-relative paths the hub has for repo, after missing_file faults."""
        root = self.repos[repo]
        paths = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        return [p for p in paths if not self.faults.is_missing(p)]

    def blob(self, path: Path) -> _Blob:
        with self._lock:
            if path not in self._blobs:
                data = path.read_bytes()
                oid = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
                self._blobs[path] = _Blob(len(data), oid, hashlib.sha256(data).hexdigest())
            return self._blobs[path]

    def log(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"  # keep-alive, and Content-Length is what ends a body, as on the hub
    # Headers and body go out in two writes; with Nagle's algorithm on, the body would wait for the
    # client's delayed ACK, 40 ms a request on Linux loopback, which no real server makes anyone wait.
    disable_nagle_algorithm = True
    timeout = 30  # idle keep-alive connections end by themselves

    def do_HEAD(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def log_message(self, *args) -> None:
        pass  # tests read hub.requests instead

    def _serve(self) -> None:
        url = urlsplit(self.path)
        path = url.path
        fault = self.hub.faults.take(self.command, path)
        if fault and fault.kind == "hang":
            self.hub.log(Request(self.command, path, None, 0))
            self.hub._stopping.wait(HANG_LIMIT)
            self.close_connection = True
            return
        if fault and fault.kind == "500":
            return self._error(path, 500, None, "Internal Error")
        if path == "/api/agent-harnesses":  # huggingface_hub's agent-detection registry, fetched once a day
            return self._send_json(path, {"standardEnvVars": [], "harnesses": {}})
        if path == "/api/models":
            return self._listing(path, parse_qs(url.query))
        if match := API.fullmatch(path):
            return self._api(path, match, parse_qs(url.query))
        if match := RESOLVE.fullmatch(path):
            return self._resolve(path, match, fault)
        self._error(path, 404, None, "Not Found")

    def _repo_error(self, path: str, repo: str, rev: str | None) -> bool:
        """Answer the errors the hub gives before looking at a file; True if one was sent."""
        if repo not in self.hub.repos:
            self._error(path, 404, "RepoNotFound", "Repository not found")
        elif rev is not None and unquote(rev) not in ("main", COMMIT):
            self._error(path, 404, "RevisionNotFound", f"Invalid rev id: {unquote(rev)}")
        else:
            return False
        return True

    def _api(self, path: str, match: re.Match, query: dict) -> None:
        repo = match["repo"]
        if self._repo_error(path, repo, match["rev"]):
            return
        files = self.hub.files(repo)
        if match["kind"] == "tree":
            prefix = f"{match['path'].strip('/')}/" if match["path"] else ""
            recursive = query.get("recursive", ["false"])[0].lower() == "true"
            body: Any = self._tree(repo, [f for f in files if f.startswith(prefix)], prefix, recursive)
        else:
            gated = "manual" if repo in self.hub.faults.gated_repos else False
            body = {
                "id": repo,
                "modelId": repo,
                "sha": COMMIT,
                "private": False,
                "gated": gated,
                "disabled": False,
                "library_name": "mlx",
                "tags": ["mlx"],
                "lastModified": "2024-11-12T00:00:00.000Z",
                "siblings": [{"rfilename": f} for f in files],
            }
            if query.get("blobs", ["false"])[0].lower() == "true":
                body["siblings"] = [self._sibling(repo, f) for f in files]
        self._send_json(path, body)

    def _listing(self, path: str, query: dict[str, list[str]]) -> None:
        self.hub.listing_queries.append(query)
        one = lambda key, default="": query.get(key, [default])[0]  # noqa: E731
        search, author, sort = one("search").lower(), one("author"), one("sort")
        found = [
            e for e in self.hub.listing if search in e["id"].lower() and (not author or e["id"].split("/")[0] == author)
        ]
        if sort:
            found.sort(key=lambda e: e.get(sort) or 0, reverse=one("direction", "-1") != "1")
        expand = query.get("expand")
        body = [{"_id": e["id"], "id": e["id"], **{k: e[k] for k in (expand or e) if k in e}} for e in found]
        self._send_json(path, body[: int(one("limit", "1000"))])

    def _sibling(self, repo: str, name: str) -> dict:
        """A file as model_info(files_metadata=True) lists it."""
        blob = self.hub.blob(self.hub.repos[repo] / name)
        entry = {"rfilename": name, "blobId": blob.oid, "size": blob.size}
        if name.endswith(LFS_SUFFIXES):
            entry["lfs"] = {"sha256": blob.sha256, "size": blob.size, "pointerSize": 134}
        return entry

    def _tree(self, repo: str, files: list[str], prefix: str, recursive: bool) -> list[dict]:
        entries, folders = [], set()
        for name in files:
            rest = name[len(prefix) :]
            if "/" in rest and not recursive:
                folders.add(prefix + rest.split("/")[0])
                continue
            blob = self.hub.blob(self.hub.repos[repo] / name)
            entry = {"type": "file", "oid": blob.oid, "size": blob.size, "path": name}
            if name.endswith(LFS_SUFFIXES):
                entry["lfs"] = {"oid": blob.sha256, "size": blob.size, "pointerSize": 134}
            entries.append(entry)
        return [
            {"type": "directory", "oid": hashlib.sha1(f.encode()).hexdigest(), "size": 0, "path": f}
            for f in sorted(folders)
        ] + entries

    def _resolve(self, path: str, match: re.Match, fault: Fault | None) -> None:
        repo, name = match["repo"], unquote(match["path"])
        if self._repo_error(path, repo, match["rev"]):
            return
        if repo in self.hub.faults.gated_repos:
            return self._error(
                path,
                401,
                "GatedRepo",
                f"Access to model {repo} is restricted. You must have "
                "access to it and be authenticated to access it. Please log in.",
            )
        if name not in self.hub.files(repo):  # also keeps "../" out of the repo folder
            return self._error(path, 404, "EntryNotFound", f'{name} does not exist on "main"')
        file = self.hub.repos[repo] / name
        blob = self.hub.blob(file)
        start = self._range_start(blob.size)
        if start is None:
            return self._error(path, 416, None, "Range Not Satisfiable")
        dropping = fault is not None and fault.kind == "drop"
        stalling = fault is not None and fault.kind == "stall"
        count = 0 if self.command == "HEAD" else blob.size - start
        if fault and (dropping or stalling):
            count = min(count, fault.after_bytes)
        status = 206 if start else 200
        self.hub.log(Request(self.command, path, status, count))  # before the client can see the answer
        self.send_response(status)
        etag = blob.sha256 if name.endswith(LFS_SUFFIXES) else blob.oid
        self.send_header("Content-Length", str(blob.size - start))
        self.send_header("ETag", f'"{etag}"')
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{blob.size - 1}/{blob.size}")
        self.end_headers()
        self._copy(file, start, count)
        if stalling:
            self.wfile.flush()
            self.hub._stopping.wait(HANG_LIMIT)
            self.close_connection = True
        if dropping:
            self.connection.shutdown(socket.SHUT_RDWR)  # mid-body: the client sees a short read
            self.close_connection = True

    def _range_start(self, size: int) -> int | None:
        """Where the body starts: 0 without a Range, None for a range this file cannot satisfy.
        Only `bytes=N-` is needed: huggingface_hub resumes with it."""
        header = self.headers.get("Range")
        if not header:
            return 0
        found = re.fullmatch(r"bytes=(\d+)-", header.strip())
        return int(found[1]) if found and int(found[1]) < size else None

    def _copy(self, file: Path, start: int, count: int) -> None:
        with file.open("rb") as source:
            source.seek(start)
            while count and (chunk := source.read(min(1 << 16, count))):
                self.wfile.write(chunk)
                count -= len(chunk)

    def _send_json(self, path: str, body) -> None:
        data = json.dumps(body).encode()
        self.hub.log(Request(self.command, path, 200, len(data)))  # before the client can see the answer
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Repo-Commit", COMMIT)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, path: str, status: int, code: str | None, message: str) -> None:
        data = b"" if self.command == "HEAD" else json.dumps({"error": message}).encode()
        self.hub.log(Request(self.command, path, status, len(data)))
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if code == "EntryNotFound":
            self.send_header("X-Repo-Commit", COMMIT)  # huggingface_hub records the absence under this commit
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
