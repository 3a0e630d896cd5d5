"""Real-time segmentation on video: frames per second of the whole loop, and where the frame budget goes.

The reference study ran DeepLabV3 through TensorRT on a Jetson with OpenCV capture; what mattered was
the frame rate of decode -> preprocess -> H2D -> inference -> D2H -> argmax + colour overlay, not the
engine alone.  Each case builds (or reuses) the engine of the matrix, then times ``--trt-frames``
frames of ``--trt-video`` (default: a clip made locally from scikit-image's photographs, panned and
zoomed) with pre- and postprocessing on the CPU (OpenCV + numpy) or on the GPU (torch ops on the uint8
frame; argmax, palette and blend on the device, the finished overlay copied back).
Recorded in ``extra_info.realtime``: mean FPS, 1 %-low FPS, per-stage mean ms and share of the
``1/--trt-fps-target`` budget, and whether the target is met.  The per-frame times go to
pytest-benchmark (its stats are seconds per frame).  A target given on the command line is a gate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_trt.measure import timing, video
from pytest_trt.models import zoo
from pytest_trt.plugin.settings import Settings
from pytest_trt.plugin.trt_run import TrtRun


@pytest.fixture(scope="session")
def trt_video(trt_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The video to play: --trt-video, or a clip made once per session."""
    if trt_settings.video:
        return trt_settings.video
    try:
        return str(video.make_clip(tmp_path_factory.mktemp("video") / "clip.mp4"))
    except (video.SourceUnavailable, ImportError) as exc:
        pytest.skip(f"no video: {exc}")


def play(trt_run: TrtRun, source: str, prep: str) -> dict[str, Any]:
    s = trt_run.settings
    if prep == "gpu" and not s.device.is_cuda:
        pytest.skip("GPU pre/postprocessing needs a CUDA GPU (none visible)")
    try:
        cap = video.open_source(source)
    except video.SourceUnavailable as exc:
        pytest.skip(str(exc))
    eng = trt_run.engine
    hw = int(trt_run.case.hw or zoo.get(trt_run.case.model).input.shape[-1])
    feed = eng.make_feed(np.zeros((1, 3, hw, hw), dtype=np.float32))
    colours = video.palette(int(zoo.get(trt_run.case.model).num_classes or 21))
    gpu = None
    if prep == "gpu":
        try:
            gpu = video.GpuOps(eng, feed, hw, colours)
        except ValueError as exc:
            pytest.skip(f"{exc} (GPU pre/postprocessing needs one)")
    # The loop replays one captured graph per frame where the engine can (the suite's timing does too).
    graph = s.device.is_cuda and s.cuda_graph != "off" and eng.capture_graph(feed)
    try:
        stats = video.run_loop(cap, s.frames, hw, eng, feed, colours, gpu=gpu)
    finally:
        cap.release()
    summary = stats.summary(s.fps_target)
    summary.update(
        preprocess_on=prep,
        postprocess_on=prep,
        cuda_graph=bool(graph),
        source=Path(source).name if not source.isdigit() else f"camera {source}",
    )
    trt_run.record["extra_info"]["realtime"] = summary
    timing.replay(trt_run.benchmark, stats.frame_s.tolist())
    trt_run.publish("ok")
    if "fps-target" in s.explicit and not summary["meets_target"]:
        pytest.fail(
            f"{summary['fps_mean']:.1f} FPS < target {s.fps_target:g} "
            f"(slowest stage: {max(summary['stage_ms'], key=summary['stage_ms'].get)})",
            pytrace=False,
        )
    return summary


@pytest.mark.slow
@pytest.mark.parametrize("prep", ["cpu", "gpu"])
@pytest.mark.trt_matrix(
    models=["deeplabv3_resnet50", "lraspp_mobilenet_v3_large"],
    hws=[320, 512, 640],
    batches=[1],
    profiles=["dynamic"],
    dynamic_hw=True,
)
def test_realtime(trt_run: TrtRun, trt_video: str, prep: str) -> None:
    play(trt_run, trt_video, prep)


@pytest.mark.smoke
@pytest.mark.parametrize("prep", ["cpu", "gpu"])
@pytest.mark.trt_matrix(
    models=["lraspp_mobilenet_v3_large"], hws=[128], batches=[1], profiles=["dynamic"], precisions=["fp32"]
)
def test_realtime_smoke(trt_run: TrtRun, trt_video: str, prep: str) -> None:
    """The smallest segmenter at reduced resolution: seconds per backend on two CPU cores."""
    summary = play(trt_run, trt_video, prep)
    assert summary["frames"] == trt_run.settings.frames
    assert sum(summary["stage_ms"].values()) == pytest.approx(summary["frame_ms"]["mean"], rel=1e-6)
