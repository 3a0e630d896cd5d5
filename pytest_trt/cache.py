"""Persistent artifact cache: content keys, checksums, atomic writes and a cross-process lock.

Every artifact (exported ONNX, quantized ONNX, serialized TensorRT plan, timing cache, calibration
cache) lives at ``ROOT/<kind>/<key[:2]>/<key><suffix>`` with a ``.meta.json`` sidecar holding its
SHA-256, size and the key parts.  An artifact is trusted only when its sidecar exists and the
checksum matches; anything else is discarded with a warning and rebuilt.  Nothing is unpickled.
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
        try:
            _ensure_private_dir(root)
            probe = root / f".write-probe-{os.getpid()}"
            probe.write_bytes(b"x")
            probe.unlink()
            return root
        except OSError as exc:
            if not fallback_to_temp:
                raise CacheError(
                    f"cache directory {root} is not writable ({exc.strerror or exc}); "
                    "pass --trt-cache-dir with a writable directory"
                ) from exc
            tmp = Path(tempfile.mkdtemp(prefix="pytest-trt-cache-"))
            warnings.warn(
                f"cache directory {root} is not writable ({exc.strerror or exc}); using the temporary "
                f"cache {tmp} for this session (nothing will be reused next time). "
                "Pass --trt-cache-dir with a writable directory to keep artifacts.",
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
        lock = FileLock(str(path) + ".lock", timeout=timeout)
        try:
            with lock:
                yield
        except Timeout as exc:
            raise CacheError(
                f"timed out after {timeout:.0f} s waiting for another process building {path}; "
                "if no other pytest is running, delete the .lock file"
            ) from exc

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
            if not path.exists():
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
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
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
            atomic_write_text(self.meta_path(path), json.dumps(meta, indent=1, default=str))
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
