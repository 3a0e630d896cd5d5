"""The cache is ours: a root others can write or own is not trusted, sidecars carry their own checksum,
partial files and old scratch directories are swept, and a wait for another process names it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from pytest_trt import cache as cache_mod
from pytest_trt.cache import ArtifactCache, CacheError, CacheWarning


def _build(content: bytes = b"real artifact"):  # type: ignore[no-untyped-def]
    def build(tmp: Path) -> dict[str, int]:
        tmp.write_bytes(content)
        return {"node_count": 12}

    return build


def _plant(root: Path) -> Path:
    """Another user's artifact with a sidecar that matches it: what a shared directory lets happen."""
    honest = ArtifactCache(root, fallback_to_temp=False) if not cache_mod.not_ours(root) else None
    assert honest is not None
    art = honest.get_or_build("onnx", {"k": 1}, ".onnx", _build(b"planted by someone else"))
    return art.path


def test_a_world_writable_cache_root_is_not_used(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    root.mkdir(mode=0o700)
    _plant(root)
    root.chmod(0o777)
    with pytest.warns(CacheWarning, match=r"can be written by others \(mode 777\).*temporary cache"):
        cache = ArtifactCache(root)
    assert cache.root != root
    assert cache.get_or_build("onnx", {"k": 1}, ".onnx", _build()).path.read_bytes() == b"real artifact"
    with pytest.raises(CacheError, match="can be written by others"):
        ArtifactCache(root, fallback_to_temp=False)


def test_a_symlink_to_a_group_writable_directory_is_not_used(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    target.chmod(0o770)
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(CacheError, match=r"can be written by others \(mode 770\)"):
        ArtifactCache(link, fallback_to_temp=False)


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="giving a directory away needs root"
)
def test_a_cache_root_owned_by_another_user_is_not_used(tmp_path: Path) -> None:
    root = tmp_path / "theirs"
    root.mkdir(mode=0o700)
    os.chown(root, 12345, 12345)
    with pytest.raises(CacheError, match=r"belongs to another user \(uid 12345\)"):
        ArtifactCache(root, fallback_to_temp=False)


def test_a_number_changed_in_a_sidecar_is_detected_and_the_artifact_rebuilt(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path / "c")
    art = cache.get_or_build("onnx", {"k": 1}, ".onnx", _build())
    meta_file = cache.meta_path(art.path)
    meta = json.loads(meta_file.read_text())
    meta["node_count"] = 13
    meta_file.write_text(json.dumps(meta))
    with pytest.warns(CacheWarning, match="sidecar was altered"):
        again = cache.get_or_build("onnx", {"k": 1}, ".onnx", _build())
    assert again.built and again.meta["node_count"] == 12


def test_an_intact_sidecar_is_reused_without_a_warning(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path / "c")
    cache.get_or_build("onnx", {"k": 1}, ".onnx", _build())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not cache.get_or_build("onnx", {"k": 1}, ".onnx", _build()).built


def test_partial_files_of_a_killed_build_are_swept(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path / "c")
    key = cache_mod.content_key({"kind": "onnx", "k": 1})
    path = cache.path_for("onnx", key, ".onnx")
    path.parent.mkdir(parents=True)
    leftovers = [
        path.with_name(f".{path.name}.4242.export.onnx"),
        path.with_name(f".{path.name}.4242.recipe.onnx"),
        path.with_name(f".{path.name}.4242.tmp"),
    ]
    for f in leftovers:
        f.write_bytes(b"partial")
    cache.get_or_build("onnx", {"k": 1}, ".onnx", _build())
    assert not any(f.exists() for f in leftovers)


def test_old_scratch_and_fallback_directories_are_removed_and_young_ones_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_mod.tempfile, "gettempdir", lambda: str(tmp_path))
    old = [tmp_path / f"{p}old" for p in cache_mod.SCRATCH_PREFIXES]
    young = tmp_path / "pytest-trt-qdq-young"
    for d in [*old, young]:
        d.mkdir()
        (d / "scratch.onnx").write_bytes(b"x")
    two_days_ago = time.time() - 2 * 24 * 3600
    for d in old:
        os.utime(d, (two_days_ago, two_days_ago))
    removed = cache_mod.sweep_scratch()
    assert sorted(removed) == sorted(old) and young.is_dir()


def test_a_wait_for_a_stopped_lock_holder_names_it_and_gives_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "c"
    ArtifactCache(root)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom pytest_trt.cache import ArtifactCache\nfrom pathlib import Path\n"
         f"c = ArtifactCache({str(root)!r})\np = c.path_for('onnx', 'ab' * 32, '.onnx')\n"
         "with c.lock(p):\n    print('locked', flush=True)\n    time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        os.kill(holder.pid, signal.SIGSTOP)
        monkeypatch.setattr(cache_mod, "STOPPED_HOLDER_S", 0.5)
        cache = ArtifactCache(root)
        t0 = time.monotonic()
        with (
            pytest.raises(CacheError, match=rf"process {holder.pid} on .*stopped: resume it with kill -CONT"),
            cache.lock(cache.path_for("onnx", "ab" * 32, ".onnx")),
        ):
            pass
        assert time.monotonic() - t0 < 30
        assert f"waiting for process {holder.pid}" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
