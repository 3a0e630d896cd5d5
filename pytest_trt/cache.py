"""Persistent artifact cache: content keys, checksums, atomic writes and a cross-process lock.

Every artifact (exported ONNX, quantized ONNX, serialized TensorRT plan, timing cache, calibration
cache) lives at ``ROOT/<kind>/<key[:2]>/<key><suffix>`` with a ``.meta.json`` sidecar holding its
SHA-256, size and the key parts, and a checksum of the sidecar itself.  An artifact is trusted only
when its sidecar is whole, names its key, and the artifact's checksum matches; anything else is
discarded with a warning and rebuilt.  Nothing is unpickled.

The cache is ours: a root that another user owns or that others can write is not used (artifacts
planted there would come with matching sidecars); the session falls back to a private temporary
cache and says why.  Partial files of killed builds (every one is named ``.<artifact>.*``) are swept
under the artifact's lock, scratch and fallback directories older than a day at start-up, and a
process waiting for another's build says whom it waits for.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

CACHE_SCHEMA = 1
LOCK_TIMEOUT_S = 3600.0
STOPPED_HOLDER_S = 30.0  # a lock holder stopped (SIGSTOP, ^Z) this long is reported, not waited for
SCRATCH_PREFIXES = ("pytest-trt-cache-", "pytest-trt-qdq-", "pytest-trt-modelopt-", "pytest-trt-onnx-")
SCRATCH_MAX_AGE_S = 24 * 3600.0


class CacheWarning(UserWarning):
    """A cached artifact was unusable (corrupt, stale) or the cache directory had to move."""


class CacheError(RuntimeError):
    """The cache cannot be used at all; the message says which directory and what to do."""


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pytest-trt"


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def content_key(parts: Mapping[str, Any]) -> str:
    """A stable key over every input that changes an artifact (order of the mapping does not matter)."""
    return hashlib.sha256(canonical_json({"schema": CACHE_SCHEMA, **parts}).encode()).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class CacheStats:
    built: dict[str, int] = field(default_factory=dict)
    reused: dict[str, int] = field(default_factory=dict)
    discarded: dict[str, int] = field(default_factory=dict)
    build_seconds: dict[str, float] = field(default_factory=dict)

    def bump(self, table: dict[str, int], kind: str) -> None:
        table[kind] = table.get(kind, 0) + 1

    def summary(self) -> str:
        kinds = sorted(set(self.built) | set(self.reused) | set(self.discarded))
        if not kinds:
            return "no artifacts used"
        parts = []
        for k in kinds:
            s = f"{k}: {self.built.get(k, 0)} built, {self.reused.get(k, 0)} reused"
            if self.discarded.get(k):
                s += f", {self.discarded[k]} discarded"
            if self.build_seconds.get(k):
                s += f" ({self.build_seconds[k]:.1f} s building)"
            parts.append(s)
        return "; ".join(parts)


@dataclass(frozen=True)
class Artifact:
    path: Path
    key: str
    sha256: str
    size: int
    built: bool  # True when this process built it, False when reused from the cache
    build_seconds: float
    meta: dict[str, Any]


Builder = Callable[[Path], Mapping[str, Any] | None]


def _ensure_private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)


class ArtifactCache:
    """A directory of content-addressed artifacts shared by concurrent pytest processes."""

    def __init__(self, root: Path | str, *, fallback_to_temp: bool = True) -> None:
        self.stats = CacheStats()
        self.root = self._usable_root(Path(root).expanduser(), fallback_to_temp)

    @staticmethod
    def _usable_root(root: Path, fallback_to_temp: bool) -> Path:
        sweep_scratch()
        try:
            _ensure_private_dir(root)
            problem = not_ours(root)
            if problem is None:
                probe = root / f".write-probe-{os.getpid()}"
                probe.write_bytes(b"x")
                probe.unlink()
                return root
        except OSError as exc:
            problem = f"is not writable ({exc.strerror or exc})"
        if not fallback_to_temp:
            raise CacheError(
                f"cache directory {root} {problem}; pass --trt-cache-dir with a directory of your own"
            )
        tmp = Path(tempfile.mkdtemp(prefix="pytest-trt-cache-"))
        warnings.warn(
            f"cache directory {root} {problem}; using the temporary cache {tmp} for this session (nothing "
            "will be reused next time). Pass --trt-cache-dir with a directory of your own to keep artifacts.",
            CacheWarning,
            stacklevel=2,
        )
        return tmp

    def path_for(self, kind: str, key: str, suffix: str) -> Path:
        return self.root / kind / key[:2] / f"{key}{suffix}"

    @staticmethod
    def meta_path(path: Path) -> Path:
        return path.with_name(path.name + ".meta.json")

    @contextlib.contextmanager
    def lock(self, path: Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
        # flock-based: the OS drops the lock of a killed process, so the next run recovers it.
        _ensure_private_dir(path.parent)
        lock = FileLock(str(path) + ".lock")
        owner = Path(str(path) + ".lock.owner")
        _acquire(lock, owner, path, timeout)
        try:
            with contextlib.suppress(OSError):
                owner.write_text(
                    json.dumps({"pid": os.getpid(), "host": os.uname().nodename, "since": time.time()})
                )
            yield
        finally:
            with contextlib.suppress(OSError):
                owner.unlink()
            lock.release()

    def verify(self, path: Path, discard: bool = True) -> dict[str, Any] | None:
        """The sidecar of a trusted artifact, or None (with a warning) if it is missing or corrupt.

        ``discard=False`` only looks: without the lock, a missing sidecar may be another process between
        publishing the artifact and its sidecar, and deleting then would destroy its fresh build."""
        meta_file = self.meta_path(path)
        if not path.exists() and not meta_file.exists():
            return None
        problem = None
        meta: dict[str, Any] = {}
        try:
            meta = json.loads(meta_file.read_text())
            if not isinstance(meta, dict) or meta.pop("meta_sha256", None) != _meta_digest(meta):
                problem = "its sidecar was altered (its own checksum does not match)"
            elif not path.name.startswith(str(meta.get("key"))):
                problem = f"its sidecar names another key ({meta.get('key')})"
            elif not path.exists():
                problem = "the artifact file is missing"
            elif path.stat().st_size != meta.get("size"):
                problem = f"size {path.stat().st_size} != recorded {meta.get('size')} (truncated?)"
            elif sha256_file(path) != meta.get("sha256"):
                problem = "checksum mismatch"
        except (OSError, ValueError) as exc:
            problem = f"unreadable metadata ({exc})"
        if problem is None:
            return meta
        if not discard:
            return None
        warnings.warn(
            f"discarding cached artifact {path}: {problem}; rebuilding it", CacheWarning, stacklevel=3
        )
        self.stats.bump(self.stats.discarded, path.parent.parent.name)
        for p in (path, meta_file):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        return None

    def _sweep_partials(self, path: Path) -> None:
        # Temp files of a process that died mid-write; safe to remove while we hold the lock.
        for stale in path.parent.glob(f".{path.name}.*"):  # every partial file is named so
            with contextlib.suppress(OSError):
                stale.unlink()

    def get_or_build(self, kind: str, key_parts: Mapping[str, Any], suffix: str, build: Builder) -> Artifact:
        """Return the cached artifact for ``key_parts`` or build it exactly once across processes.

        ``build(tmp_path)`` writes the artifact to ``tmp_path`` and may return extra metadata
        (JSON-serializable) to store in the sidecar.
        """
        key = content_key({"kind": kind, **key_parts})
        path = self.path_for(kind, key, suffix)
        meta = self.verify(path, discard=False)  # unlocked: look, never delete
        if meta is None:
            with self.lock(path):
                meta = self.verify(path)  # another process may have built it while we waited
                if meta is None:
                    self._sweep_partials(path)
                    return self._build(kind, key, key_parts, path, build)
        self.stats.bump(self.stats.reused, kind)
        return Artifact(path, key, meta["sha256"], meta["size"], False, 0.0, meta)

    def _build(
        self, kind: str, key: str, key_parts: Mapping[str, Any], path: Path, build: Builder
    ) -> Artifact:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        t0 = time.perf_counter()
        try:
            extra = dict(build(tmp) or {})
            if not tmp.exists():
                raise CacheError(f"builder for {kind} wrote nothing to {tmp}")
            seconds = time.perf_counter() - t0
            meta = {
                "kind": kind,
                "key": key,
                "key_parts": json.loads(canonical_json(key_parts)),
                "sha256": sha256_file(tmp),
                "size": tmp.stat().st_size,
                "created": time.time(),
                "build_seconds": seconds,
                **extra,
            }
            _fsync(tmp)
            os.replace(tmp, path)
            meta = json.loads(json.dumps(meta, default=str))  # what the sidecar will read back as
            meta_doc = {**meta, "meta_sha256": _meta_digest(meta)}
            atomic_write_text(self.meta_path(path), json.dumps(meta_doc, indent=1))
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise CacheError(
                    f"cache directory {self.root} is full while writing {path.name}; free space or "
                    "pass --trt-cache-dir on another disk"
                ) from exc
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        self.stats.bump(self.stats.built, kind)
        self.stats.build_seconds[kind] = self.stats.build_seconds.get(kind, 0.0) + seconds
        return Artifact(path, key, meta["sha256"], meta["size"], True, seconds, meta)


def _meta_digest(meta: Mapping[str, Any]) -> str:
    """The sidecar's own checksum (over everything but itself): a changed number in it is detected."""
    return hashlib.sha256(canonical_json(meta).encode()).hexdigest()


def not_ours(root: Path) -> str | None:
    """Why a cache root must not be trusted, or None: another user owns it, or others can write it."""
    st = root.stat()  # through a symlink: the directory it leads to
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return f"belongs to another user (uid {st.st_uid})"
    if st.st_mode & 0o022:
        return f"can be written by others (mode {st.st_mode & 0o777:o})"
    return None


def sweep_scratch(max_age_s: float = SCRATCH_MAX_AGE_S) -> list[Path]:
    """Remove our scratch and fallback directories in the temporary directory older than ``max_age_s``
    (a killed run leaves them); a live session's are younger and are kept."""
    import shutil

    removed = []
    now = time.time()
    tmp = Path(tempfile.gettempdir())
    for prefix in SCRATCH_PREFIXES:
        for d in tmp.glob(prefix + "*"):
            try:
                st = d.lstat()
                if not d.is_dir() or d.is_symlink() or now - st.st_mtime < max_age_s:
                    continue
                if hasattr(os, "getuid") and st.st_uid != os.getuid():
                    continue
                shutil.rmtree(d)
                removed.append(d)
            except OSError:
                continue
    return removed


def _holder(owner: Path) -> tuple[str, bool]:
    """Who holds a lock, as its owner file says (pid, host, how long), and whether it is stopped."""
    try:
        info = json.loads(owner.read_text())
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return "another process", False
    held = time.time() - float(info.get("since", time.time()))
    state = ""
    with contextlib.suppress(OSError, IndexError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    stopped = state in ("T", "t")
    note = " (stopped: resume it with kill -CONT, or end it)" if stopped else ""
    return f"process {pid} on {info.get('host', '?')}, holding it for {held:.0f} s{note}", stopped


def _acquire(lock: FileLock, owner: Path, path: Path, timeout: float) -> None:
    """Take ``lock``; while another process holds it, say once whom we wait for, and give up with
    a message naming it after ``timeout`` (or as soon as the holder has been stopped a while)."""
    import sys

    try:
        lock.acquire(timeout=0)
        return
    except Timeout:
        pass
    sys.stderr.write(f"[pytest-trt] waiting for {_holder(owner)[0]} to finish building {path.name}\n")
    t0 = time.monotonic()
    stopped_since: float | None = None
    while True:
        try:
            lock.acquire(timeout=min(5.0, max(0.0, timeout - (time.monotonic() - t0))))
            return
        except Timeout:
            pass
        who, stopped = _holder(owner)
        waited = time.monotonic() - t0
        stopped_since = (stopped_since or time.monotonic()) if stopped else None
        if waited >= timeout or (
            stopped_since is not None and time.monotonic() - stopped_since >= STOPPED_HOLDER_S
        ):
            raise CacheError(
                f"gave up after {waited:.0f} s waiting for {who} building {path}; if no other pytest is "
                "running, delete the .lock file"
            )


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())
