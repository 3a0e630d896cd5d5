"""Result files survive a full disk: the previous ``--benchmark-json`` / ``--trt-json`` stays whole, the
new results are saved in the temporary directory instead, and the summary says where everything went.

The full disk is real: a 256 KiB tmpfs (mounting one needs root; elsewhere those tests skip saying so).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from pytest_trt.plugin.result_files import Saved
from tests.conftest import fast_args

PREVIOUS = json.dumps({"machine_info": {}, "benchmarks": [], "note": "the previous run"})
SUITE = """
import pytest

@pytest.mark.trt_matrix(models=["tinycnn"], backends=["onnxruntime"], precisions=["fp32"], batches=[1])
def test_t(trt_run):
    trt_run.run()
"""


@contextlib.contextmanager
def _full_disk(where: Path) -> Iterator[Path]:
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"a small tmpfs is needed to fill a disk for real: mount said {mounted.stderr.strip()!r}")
    try:
        for name in ("results.json", "trt.json"):
            (where / name).write_text(PREVIOUS)
        with contextlib.suppress(OSError), (where / "filler").open("wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


def test_pytest_benchmark_s_own_writer_loses_the_previous_file_on_a_full_disk(tmp_path: Path) -> None:
    """The failure our writer replaces: pytest-benchmark truncates first, then cannot write."""
    from pytest_benchmark.session import BenchmarkSession

    with _full_disk(tmp_path / "disk") as disk:
        target = disk / "results.json"
        fake = SimpleNamespace(json=target, logger=SimpleNamespace(info=lambda *a, **k: None))
        with pytest.raises(OSError):
            BenchmarkSession.save_json(fake, {"benchmarks": ["x" * 100] * 10_000})  # type: ignore[arg-type]
        assert target.read_text() != PREVIOUS


def test_a_full_disk_keeps_the_previous_files_and_says_where_the_results_went(
    pytester: pytest.Pytester, tmp_path: Path, shared_cache: Path
) -> None:
    pytester.makepyfile(SUITE)
    with _full_disk(tmp_path / "disk") as disk:
        r = pytester.runpytest(
            *fast_args(shared_cache),
            f"--benchmark-json={disk / 'results.json'}",
            f"--trt-json={disk / 'trt.json'}",
        )
        assert (disk / "results.json").read_text() == PREVIOUS
        assert (disk / "trt.json").read_text() == PREVIOUS
    r.assert_outcomes(passed=1)
    out = r.stdout.str()
    assert "Traceback" not in out and "INTERNALERROR" not in out
    r.stdout.fnmatch_lines(["*pytest-trt results*"])  # the summary table was printed
    for what in ("--benchmark-json", "--trt-json"):
        line = next(ln for ln in out.splitlines() if f"pytest-trt results: {what}: could not write" in ln)
        assert "(the previous file is kept whole)" in line
        saved = Path(line.rsplit("saved to ", 1)[1].split(" instead")[0])
        assert json.loads(saved.read_text())  # the new results, whole
        saved.unlink()


def test_an_unwritable_target_falls_back_to_the_temporary_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    saved = Saved()
    saved.save(blocker / "results.json", b"{}", "--trt-json")
    assert "could not write" in saved.lines[0] and not saved.lost
    fallback = Path(saved.lines[0].rsplit("saved to ", 1)[1].split(" instead")[0])
    assert fallback.read_bytes() == b"{}"
    fallback.unlink()


def test_a_written_file_is_named_in_the_summary(tmp_path: Path) -> None:
    saved = Saved()
    saved.save(tmp_path / "r.json", b"{}", "--trt-json")
    assert saved.lines == [f"--trt-json: {tmp_path / 'r.json'}"]


def test_an_older_pytest_benchmark_s_open_file_is_written_by_path(tmp_path: Path) -> None:
    """pytest-benchmark <= 5.2 (5.2.3 on the H200) hands over an open file (argparse.FileType): it is closed
    and replaced."""
    from pytest_trt.plugin.result_files import guard_benchmark_json

    target = tmp_path / "b.json"
    handle = target.open("wb")
    session = SimpleNamespace(json=handle, save_json=None)
    saved = Saved()
    guard_benchmark_json(SimpleNamespace(_benchmarksession=session), saved)  # type: ignore[arg-type]
    assert handle.closed
    session.save_json({"benchmarks": []})
    assert json.loads(target.read_text()) == {"benchmarks": []} and saved.lines == [
        f"--benchmark-json: {target}"
    ]
