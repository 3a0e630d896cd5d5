"""Comparing builder versions side by side (``pytest-trt compare --by tensorrt_rtx_version``) on stored
results of real TensorRT-RTX builds (``make rtx-versions``, trimmed to four cases): 1.6.1.120 refuses
the int8 Q/DQ graph that 1.7.1.116 builds, the detector case exists in 1.7.1.116's run only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_trt.cli import main
from pytest_trt.engines.tensorrt import versions
from pytest_trt.gate import render, side_by_side
from pytest_trt.gate.runs import load_run

DATA = Path(__file__).parent / "data" / "rtx-versions"
RUNS = [DATA / "rtx-1.6.1.120.json", DATA / "rtx-1.7.1.116.json"]
FP32 = "benchmarks/test_build.py::test_build_smoke[tinycnn-tensorrt_rtx-fp32-static-b1-opt0]"
INT8 = (
    "benchmarks/test_classification.py::test_classification_smoke[tinycnn-tensorrt_rtx-int8-dynamic-b1-opt3]"
)
DETECTOR = "benchmarks/test_detection.py::test_detection_smoke[yolov8_shapes_seg-tensorrt_rtx-fp32-dynamic-b1-opt3-96px]"


@pytest.fixture(scope="module")
def table() -> dict[str, object]:
    return side_by_side.side_by_side(RUNS, "tensorrt_rtx_version")


def test_one_column_per_builder_version_in_release_order(table: dict[str, object]) -> None:
    assert table["columns"] == ["1.6.1.120", "1.7.1.116"]
    assert side_by_side.column_order(["1.10.0", "1.9.2", "abc", "1.7.1.116"]) == [
        "1.7.1.116",
        "1.9.2",
        "1.10.0",
        "abc",
    ]


def test_a_built_case_shows_its_plan_and_the_change_from_the_version_before(table: dict[str, object]) -> None:
    row = table["builds"][FP32]  # type: ignore[index]
    old, new = row["cells"]["1.6.1.120"], row["cells"]["1.7.1.116"]
    assert old.built and new.built and old.layers and new.layers
    change = row["changes"]["1.7.1.116"]
    assert change.plan_bytes == pytest.approx(new.plan_bytes / old.plan_bytes - 1)
    assert change.status is None


def test_a_refused_recipe_keeps_the_builders_words(table: dict[str, object]) -> None:
    row = table["builds"][INT8]  # type: ignore[index]
    refused = row["cells"]["1.6.1.120"]
    assert refused.status == "build_failed" and not refused.built
    assert refused.words.startswith("IBuilder::buildSerializedNetwork: Error Code 1: Myelin")
    assert row["changes"]["1.7.1.116"].status == "build_failed -> built"


def test_a_case_one_version_lacks_is_listed_as_absent(table: dict[str, object]) -> None:
    row = table["builds"][DETECTOR]  # type: ignore[index]
    assert row["cells"]["1.6.1.120"].status == side_by_side.ABSENT
    assert row["cells"]["1.7.1.116"].built
    assert "1.7.1.116" not in row["changes"]  # nothing to compare with


def test_the_rendered_table_names_recipes_refusals_and_absences(table: dict[str, object]) -> None:
    text = render.render_side_by_side(table)
    assert "1.6.1.120 (" in text and "trt1.6-strong-onnx-qdq-int8" in text  # recipes in the header
    assert "build_failed [1]" in text and "[1] 1.6.1.120: IBuilder::buildSerializedNetwork" in text
    assert "absent" in text
    assert f"1.7.1.116: {INT8}: build_failed -> built" in text  # the finding, among the changes
    assert "1.6.1.120: 2 built, 1 not built, 1 absent" in text


def test_compare_by_reads_trt_json_files_and_writes_markdown_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    md, js = tmp_path / "t.md", tmp_path / "t.json"
    argv = [
        "compare",
        "--by",
        "tensorrt_rtx_version",
        *map(str, RUNS),
        "--markdown",
        str(md),
        "--json",
        str(js),
    ]
    assert main(argv) == 0
    assert "builds by tensorrt_rtx_version" in capsys.readouterr().out
    assert "| `" + INT8 + "` | build_failed [1] |" in md.read_text()
    doc = json.loads(js.read_text())
    assert doc["builds"][INT8]["changes"]["1.7.1.116"]["status"] == "build_failed -> built"


def test_a_trt_json_file_is_read_as_a_run_without_timings() -> None:
    run = load_run(RUNS[0])
    assert run["benchmarks"] == [] and len(run["pytest_trt"]["cases"]) == 3


def test_machine_info_names_the_tensorrt_rtx_builder_here() -> None:
    from importlib.metadata import version

    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX is not installed (pip install pytest-trt[rtx])")
    assert versions.builder_versions()["tensorrt_rtx_version"] == version("tensorrt_rtx_cu12")


def test_the_report_shows_what_each_builder_version_did(tmp_path: Path) -> None:
    from pytest_trt.report.build import write_report

    md = write_report(RUNS, tmp_path / "report")["markdown"].read_text()
    section = md.split("## Builds by tensorrt_rtx_version", 1)[1]
    assert "| 1.6.1.120 (" in section and "build_failed [1]" in section and "absent" in section
