"""The real-time video pipeline: the clip, the source, the stage maths, the camera skip, the FPS gate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2", exc_type=ImportError)

from pytest_trt.measure import video  # noqa: E402


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return video.make_clip(tmp_path_factory.mktemp("v") / "c.mp4", frames=12, size=(160, 120))


def test_clip_is_real_video_of_real_images(clip: Path) -> None:
    cap = video.open_source(clip)
    frames = [f for f, _ in video.frames_of(cap, 12, loop=False)]
    assert len(frames) == 12 and frames[0].shape == (120, 160, 3)
    assert float(np.std(frames[0])) > 20  # a photograph, not a flat colour
    assert not np.array_equal(frames[0], frames[3])  # panned/zoomed between frames
    cap.release()
    cap = video.open_source(clip)
    assert len(list(video.frames_of(cap, 30))) == 30  # a file is rewound to give the frames asked for


def test_sources_that_cannot_open_say_why(tmp_path: Path) -> None:
    with pytest.raises(video.SourceUnavailable, match="no camera 7 can be opened"):
        video.open_source("7")
    with pytest.raises(video.SourceUnavailable, match="no such file"):
        video.open_source(tmp_path / "missing.mp4")
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(video.SourceUnavailable, match="cannot decode"):
        video.open_source(tmp_path / "bad.mp4")


def test_frame_rate_one_percent_low_and_budget_shares() -> None:
    st = video.FrameStats()
    for i in range(200):
        slow = i in (10, 20)  # two slow frames: the slowest 1 % of 200
        st.add(
            {
                "decode": 0.001,
                "preprocess": 0.002,
                "h2d": 0.0,
                "infer": 0.03 if slow else 0.01,
                "d2h": 0.0,
                "postprocess": 0.002,
            }
        )
    s = st.summary(target_fps=60)
    assert s["frames"] == 200 and s["frame_ms"]["p50"] == pytest.approx(15.0)
    assert s["fps_mean"] == pytest.approx(1 / (0.015 + 0.04 / 200))
    assert s["fps_1pct_low"] == pytest.approx(1 / 0.035)
    assert s["budget_share"]["infer"] == pytest.approx((0.01 + 0.04 / 200) * 60)
    assert s["meets_target"] is True and s["meets_target_1pct_low"] is False


def test_preprocess_and_overlay() -> None:
    frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    x = video.preprocess_cpu(frame, 64)
    assert x.shape == (1, 3, 64, 64) and x.dtype == np.float32 and abs(float(x.mean())) < 3
    logits = np.zeros((1, 3, 64, 64), np.float32)
    logits[0, 2, :32] = 1.0  # top half class 2, bottom half class 0 (background: frame kept dimmed)
    out = video.overlay(frame, logits, video.palette(3))
    assert out.shape == frame.shape
    assert not np.array_equal(out[:60], frame[:60] // 2) and np.allclose(out[70:], frame[70:] * 0.5, atol=1)


def test_torch_postprocessing_matches_the_cpu_overlay() -> None:
    """The GPU variant's overlay (torch ops, run here on the CPU) is the CPU pipeline's image."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    logits = rng.normal(size=(1, 5, 30, 40)).astype(np.float32)
    colours = video.palette(5)
    ref = video.overlay(frame, logits, colours)
    got = video.overlay_torch(torch.from_numpy(frame), torch.from_numpy(logits), torch.from_numpy(colours))
    assert got.dtype == torch.uint8 and got.shape == frame.shape
    diff = np.abs(got.numpy().astype(int) - ref.astype(int))
    assert diff.max() <= 1  # the same labels at every pixel; blending rounds alike to within 1
    wrong = video.overlay_torch(
        torch.from_numpy(frame), torch.from_numpy(logits[:, ::-1].copy()), torch.from_numpy(colours)
    )
    assert np.abs(wrong.numpy().astype(int) - ref.astype(int)).max() > 1  # other labels: caught


def test_realtime_benchmark_skips_without_camera_and_gates_fps(
    pytester: pytest.Pytester, shared_cache: Path
) -> None:
    from tests.conftest import fast_args

    src = Path(__file__).parents[1] / "benchmarks" / "test_realtime.py"
    pytester.makepyfile(test_rt=src.read_text())
    args = [*fast_args(shared_cache, "--trt-backend=onnxruntime"), "-m", "smoke", "--trt-frames=5"]
    r = pytester.runpytest(*args, "--trt-video=0", "-rs")
    r.assert_outcomes(skipped=2)
    r.stdout.fnmatch_lines(["*no camera 0 can be opened*"])
    ok = pytester.runpytest(*args, "--trt-fps-target=0.5", "-rs")
    ok.assert_outcomes(passed=1, skipped=1)  # the GPU-processing variant needs a GPU
    ok.stdout.fnmatch_lines(["*GPU pre/postprocessing needs a CUDA GPU*"])
    bad = pytester.runpytest(*args, "--trt-fps-target=100000")
    bad.assert_outcomes(failed=1, skipped=1)
    bad.stdout.fnmatch_lines(["*FPS < target 100000*"])


def test_report_draws_fps_against_resolution(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    import json

    from pytest_trt.report.build import write_report

    benches = [
        {
            "name": f"test_realtime[m-{b}-{hw}px-cpu]",
            "fullname": f"b.py::test_realtime[m-{b}-{hw}px-cpu]",
            "stats": {"median": 0.01},
            "extra_info": {
                "model": "m",
                "backend": b,
                "precision": "fp32",
                "hw": hw,
                "status": "ok",
                "realtime": {"fps_mean": 3e4 / hw, "preprocess_on": "cpu"},
            },
        }
        for b in ("onnxruntime", "torch")
        for hw in (128, 256, 512)
    ]
    f = tmp_path / "r.json"
    f.write_text(json.dumps({"machine_info": {}, "benchmarks": benches}))
    out = write_report([f], tmp_path / "rep")
    assert out["fps_vs_resolution"].stat().st_size > 5_000


def test_gpu_preprocessing_computes_what_the_cpu_path_does() -> None:
    """The torch path (run here on CPU tensors) matches OpenCV's within bilinear rounding."""
    import torch

    frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    out = torch.empty(1, 3, 64, 64)
    video.preprocess_gpu(frame, 64, torch.device("cpu"), out)
    diff = np.abs(out.numpy() - video.preprocess_cpu(frame, 64))
    assert float(diff.max()) < 0.05 and float(diff.mean()) < 0.01  # ~1/255 of a pixel after normalising
