"""Your own model: an ONNX file from the command line, register_model from a conftest, your own data.

The ONNX files here are exported by plain ``torch.onnx.export`` (as a user would, outside pytest-trt):
two inputs (float features with a dynamic sequence axis, integer token ids) and two outputs.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from pytest_trt.models import onnx_models, onnx_shapes, signature
from tests.conftest import fast_args, load_json


class TwoIn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.proj = nn.Linear(8, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, feats: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.proj(feats) + self.emb(ids)
        return self.head(torch.tanh(h).mean(1)), h


def export_two_in(path: Path) -> Path:
    torch.manual_seed(0)
    feats, ids = torch.randn(2, 6, 8), torch.randint(0, 50, (2, 6))
    axes = {"feats": {0: "batch", 1: "seq"}, "ids": {0: "batch", 1: "seq"}, "logits": {0: "batch"}}
    torch.onnx.export(
        TwoIn().eval(),
        (feats, ids),
        str(path),
        dynamo=False,
        input_names=["feats", "ids"],
        output_names=["logits", "hidden"],
        dynamic_axes={**axes, "hidden": {0: "batch", 1: "seq"}},
        opset_version=17,
    )
    return path


@pytest.fixture(scope="module")
def two_in(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_two_in(tmp_path_factory.mktemp("user") / "two_in.onnx")


SHAPES = "feats:4x12x8,ids:4x12"


def _records(out: Path) -> dict[str, dict[str, Any]]:
    return {b["param"]: b["extra_info"] for b in load_json(out)["benchmarks"]}


# -- the graph is read, not guessed -------------------------------------------------------------


def test_inputs_dtypes_and_integer_ranges_come_from_the_graph(two_in: Path) -> None:
    g = onnx_models.read_graph(two_in)
    assert [(t.name, t.dtype, t.dims) for t in g.inputs] == [
        ("feats", "float32", ("batch", "seq", 8)),
        ("ids", "int64", ("batch", "seq")),
    ]
    assert g.int_ranges == {"ids": (0, 50)}  # Gather indices into a 50-row table
    spec = onnx_models.spec_for_onnx(
        "m", two_in, shapes=onnx_shapes.Shapes({"feats": (4, 12, 8), "ids": (4, 12)}, {}, {})
    )
    assert [i.shape for i in spec.inputs] == [(12, 8), (12,)] and spec.batches == (4,)
    ids = spec.inputs[1].draw(64, np.random.default_rng(0))
    assert ids.dtype == np.int64 and ids.min() >= 0 and ids.max() < 50


def test_a_dynamic_axis_without_a_size_names_the_input_and_the_option(two_in: Path) -> None:
    with pytest.raises(
        onnx_shapes.ShapeError, match=r"'feats' axis 1 \('seq'\) is dynamic.*--trt-shapes feats:1xNx8"
    ):
        onnx_models.spec_for_onnx("m", two_in)
    with pytest.raises(onnx_shapes.ShapeError, match=r"rank 3.*rank 2"):
        onnx_models.spec_for_onnx(
            "m", two_in, shapes=onnx_shapes.Shapes({"feats": (4, 12), "ids": (4, 12)}, {}, {})
        )
    with pytest.raises(onnx_shapes.ShapeError, match=r"'nope', which the graph lacks.*feats: float32"):
        onnx_models.spec_for_onnx("m", two_in, shapes=onnx_shapes.Shapes({"nope": (1,)}, {}, {}))


def test_min_opt_max_shapes_make_a_profile(two_in: Path) -> None:
    shapes = onnx_shapes.Shapes(
        {"feats": (8, 16, 8), "ids": (8, 16)},
        {"feats": (1, 4, 8), "ids": (1, 4)},
        {"feats": (32, 64, 8), "ids": (32, 64)},
    )
    spec = onnx_models.spec_for_onnx("m", two_in, shapes=shapes)
    assert spec.batch_range == (1, 8, 32)
    assert spec.inputs[0].triplet((1, 8, 32)) == ((1, 4, 8), (8, 16, 8), (32, 64, 8))
    assert spec.inputs[1].triplet((1, 8, 32)) == ((1, 4), (8, 16), (32, 64))


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("feats:4x0x8", "positive"),
        ("4x12x8", "needs an input name"),
        ("a:1x2,a:1x2", "given twice"),
        ("a:1,2", "name"),
    ],
)
def test_shape_syntax_errors_quote_the_value(text: str, error: str) -> None:
    with pytest.raises(signature.ShapeSyntaxError, match=error):
        signature.parse_shapes([text])


def test_trtexec_spelling_is_accepted() -> None:
    assert signature.parse_shapes(["input:1x3x224x224,mask:1x128", "input_ids:0:8x128"]) == {
        "input": (1, 3, 224, 224),
        "mask": (1, 128),
        "input_ids:0": (8, 128),
    }


# -- pytest --trt-onnx model.onnx: no test file needed ------------------------------------------


def test_onnx_file_in_one_command(pytester: pytest.Pytester, two_in: Path, shared_cache: Path) -> None:
    out = pytester.path / "out.json"
    r = pytester.runpytest(
        *fast_args(shared_cache),
        f"--trt-onnx={two_in}",
        f"--trt-shapes={SHAPES}",
        "--trt-backend=onnxruntime",
        "--trt-precision=fp32,fp16,int8",
        "--trt-batch=1,4",
        f"--benchmark-json={out}",
    )
    r.assert_outcomes(passed=6)
    recs = _records(out)
    assert set(recs) == {
        f"two_in.onnx-onnxruntime-{p}-dynamic-b{b}-opt3" for p in ("fp32", "fp16", "int8") for b in (1, 4)
    }
    for rec in recs.values():
        q = rec["quality"]
        assert rec["status"] == "ok" and rec["weights_kind"] == "onnx-file"
        assert "ONNX Runtime CPU" in q["data"]["baseline"] and "no PyTorch module" in q["data"]["baseline"]
        assert q["output_names"] == ["logits", "hidden"] and q["outputs"]["hidden"]["passed"]
        assert {g.get("output") for g in q["gates"]} == {"logits"}
    assert recs["two_in.onnx-onnxruntime-int8-dynamic-b4-opt3"]["quality"]["reference"]["exact"] is True
    # -k selects by file name, as with any id
    r = pytester.runpytest(
        *fast_args(shared_cache),
        f"--trt-onnx={two_in}",
        f"--trt-shapes={SHAPES}",
        "--trt-backend=onnxruntime",
        "-k",
        "two_in.onnx and int8",
        "--co",
        "-q",
    )
    # the batch in --trt-shapes (4) is the file's default batch: fp32, fp16, int8 at b4
    r.stdout.fnmatch_lines(
        ["*two_in.onnx-onnxruntime-int8-dynamic-b4-opt3*", "1/3 tests collected (2 deselected)*"]
    )


def test_a_missing_size_is_a_usage_error_naming_the_input_and_the_option(
    pytester: pytest.Pytester, two_in: Path, shared_cache: Path
) -> None:
    r = pytester.runpytest(*fast_args(shared_cache), f"--trt-onnx={two_in}", "--trt-backend=onnxruntime")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines(["*two_in.onnx*'feats' axis 1 ('seq') is dynamic*--trt-shapes feats:1xNx8*"])


def test_a_stray_shape_name_is_a_usage_error(
    pytester: pytest.Pytester, two_in: Path, shared_cache: Path
) -> None:
    r = pytester.runpytest(*fast_args(shared_cache), f"--trt-onnx={two_in}", "--trt-shapes=image:1x3x8x8")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines(["*'image', which no --trt-onnx file has*feats: float32*"])


def test_a_broken_second_output_fails_and_says_which(
    pytester: pytest.Pytester, two_in: Path, shared_cache: Path
) -> None:
    r = pytester.runpytest(
        *fast_args(shared_cache),
        f"--trt-onnx={two_in}",
        f"--trt-shapes={SHAPES}",
        "--trt-backend=faulty_noise_last,onnxruntime",
        "--trt-precision=fp32",
    )
    r.assert_outcomes(passed=1, failed=1)
    r.stdout.fnmatch_lines(
        [
            "*quality gate failed for two_in.onnx-faulty_noise_last-fp32*",
            "*[[]hidden] ref_error_ratio = * FAILED*",
        ]
    )
    assert "[logits]" not in r.stdout.str().split("quality gate failed")[1].split("override with")[0]


def test_unsupported_op_is_the_backends_message(
    pytester: pytest.Pytester, tmp_path: Path, shared_cache: Path
) -> None:
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 4])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 4])
    node = onnx.helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")
    model = onnx.helper.make_model(
        onnx.helper.make_graph([node], "g", [x], [y]),
        opset_imports=[onnx.helper.make_opsetid("", 17), onnx.helper.make_opsetid("com.example", 1)],
    )
    path = tmp_path / "custom.onnx"
    onnx.save_model(model, str(path))
    out = tmp_path / "out.json"
    r = pytester.runpytest(
        *fast_args(shared_cache),
        f"--trt-onnx={path}",
        "--trt-backend=onnxruntime",
        "--trt-precision=fp32",
        "--trt-batch=2",
        f"--trt-json={out}",
    )
    r.assert_outcomes(failed=1)
    rec = load_json(out)["cases"][0]
    assert rec["status"] in ("build_failed", "run_failed")
    assert "Frobnicate" in rec["message"]


# -- register_model from a conftest outside the repository ---------------------------------------

CONFTEST = """
import torch, torchvision
from torch import nn
import pytest_trt

class Pair(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
    def forward(self, image, scale):
        y = self.conv(image)
        return y.mean((2, 3)) * scale, y.amax((2, 3))

pytest_trt.register_model("small_resnet", module=lambda: torchvision.models.resnet18(weights=None, num_classes=10),
    inputs={"image": (3, 32, 32)}, task="classification", num_classes=10, trained=False)
pytest_trt.register_model("pair", module=Pair, inputs={"image": (3, 8, 8), "scale": (1,)}, trained=False)
pytest_trt.register_model("my_onnx", onnx="two_in.onnx", shapes={"feats": (2, 12, 8), "ids": (2, 12)})
"""

BAD = """
pytest_trt.register_model("gone", onnx="nowhere.onnx")
pytest_trt.register_model("pair", module=Pair, inputs={"image": (3, 8, 8), "scale": (1,)})
pytest_trt.register_model("wrong_inputs", module=Pair, inputs={"image": (3, 8, 8)})
pytest_trt.register_model("unchecked", onnx="invalid.onnx")
pytest_trt.register_model("resnet18", module=Pair, inputs={"image": (3, 8, 8), "scale": (1,)})
"""

TEST = """
import pytest

@pytest.mark.trt_matrix(tag="user", backends=["onnxruntime"], precisions=["fp32"], batches=[2])
def test_declared(trt_run):
    trt_run.run()
"""


def _invalid_onnx(path: Path) -> None:
    """A graph onnx.checker rejects: a node reads a tensor nothing produces."""
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])
    node = onnx.helper.make_node("Add", ["x", "ghost"], ["y"])
    m = onnx.helper.make_model(
        onnx.helper.make_graph([node], "g", [x], [y]), opset_imports=[onnx.helper.make_opsetid("", 17)]
    )
    path.write_bytes(m.SerializeToString())


def test_register_model_from_an_outside_conftest(
    pytester: pytest.Pytester, two_in: Path, shared_cache: Path
) -> None:
    shutil.copy(two_in, pytester.path / "two_in.onnx")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_declared=TEST)
    for k, expect in (
        ("small_resnet", "small_resnet-onnxruntime-fp32"),
        ("my_onnx", "my_onnx-onnxruntime-fp32"),
        ("pair", "pair-onnxruntime-fp32"),
    ):
        r = pytester.runpytest(*fast_args(shared_cache), "-k", k)
        r.assert_outcomes(passed=1, deselected=2)
        r.stdout.fnmatch_lines([f"*{expect}-dynamic-b2-opt3*ok*"])


def test_bad_declarations_are_one_error_each_and_the_rest_runs(
    pytester: pytest.Pytester, two_in: Path, shared_cache: Path
) -> None:
    shutil.copy(two_in, pytester.path / "two_in.onnx")
    _invalid_onnx(pytester.path / "invalid.onnx")
    pytester.makeconftest(CONFTEST + BAD)
    pytester.makepyfile(test_declared=TEST)
    r = pytester.runpytest(*fast_args(shared_cache))
    r.assert_outcomes(passed=2, errors=5)  # small_resnet and my_onnx run; the zoo's resnet18 is not "user"
    out = r.stdout.str()
    assert "model 'gone': ONNX file" in out and "does not exist; fix the path" in out
    assert "model 'pair' is registered twice (first at" in out and "give one of them another name" in out
    assert "model 'wrong_inputs': forward failed on the declared inputs (image: float32[N, 3, 8, 8])" in out
    assert "model 'unchecked': ONNX file" in out and "fails onnx.checker" in out
    assert "model 'resnet18' is registered twice (first at the model zoo" in out
    assert "resnet18-onnxruntime" not in out  # reported, not run: the test selects the user's models
    r = pytester.runpytest(*fast_args(shared_cache), "--trt-models=resnet18", "--co", "-q")
    r.stdout.fnmatch_lines(["*resnet18-invalid*"])


# -- your own data --------------------------------------------------------------------------------


@pytest.fixture
def user_data(tmp_path: Path, two_in: Path) -> dict[str, Path]:
    import onnxruntime as ort

    rng = np.random.default_rng(5)
    feats = rng.standard_normal((6, 12, 8)).astype(np.float32)
    ids = rng.integers(0, 50, (6, 12))
    files = {
        k: tmp_path / f"{k}.npz"
        for k in ("inputs", "bad_name", "bad_dtype", "bad_shape", "refs", "refs_wrong")
    }
    np.savez(files["inputs"], feats=feats, ids=ids)
    np.savez(files["bad_name"], feats=feats, tokens=ids)
    np.savez(files["bad_dtype"], feats=feats, ids=ids.astype(np.float32))
    np.savez(files["bad_shape"], feats=feats[:, :, :4], ids=ids)
    logits, hidden = ort.InferenceSession(str(two_in)).run(None, {"feats": feats, "ids": ids})
    np.savez(files["refs"], logits=logits, hidden=hidden)
    np.savez(files["refs_wrong"], logits=logits + np.abs(logits).mean(), hidden=hidden)
    return files


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("bad_name", "missing 'ids' and unknown 'tokens'"),
        ("bad_dtype", "'ids' holds float32 values; the model takes int64"),
        ("bad_shape", "'feats' has shape 6x12x4; the model takes N x 12x8"),
    ],
)
def test_mismatched_inputs_are_a_usage_error_listing_what_the_model_expects(
    pytester: pytest.Pytester,
    two_in: Path,
    shared_cache: Path,
    user_data: dict[str, Path],
    bad: str,
    says: str,
) -> None:
    r = pytester.runpytest(
        *fast_args(shared_cache),
        f"--trt-onnx={two_in}",
        f"--trt-shapes={SHAPES}",
        f"--trt-inputs={user_data[bad]}",
    )
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines([f"*{says}*the model expects feats: float32[[]N, 12, 8]; ids: int64[[]N, 12]*"])


def test_inputs_and_trusted_outputs_judge_both_ways(
    pytester: pytest.Pytester, two_in: Path, shared_cache: Path, user_data: dict[str, Path]
) -> None:
    common = [
        *fast_args(shared_cache),
        f"--trt-onnx={two_in}",
        f"--trt-shapes={SHAPES}",
        "--trt-backend=onnxruntime",
        "--trt-precision=fp32",
        f"--trt-inputs={user_data['inputs']}",
    ]
    out = pytester.path / "ok.json"
    r = pytester.runpytest(*common, f"--trt-reference-outputs={user_data['refs']}", f"--benchmark-json={out}")
    r.assert_outcomes(passed=1)
    q = next(iter(_records(out).values()))["quality"]
    assert q["data"]["source"] == "npz:inputs.npz(n=6)" and q["data"]["samples"] == 6
    assert q["data"]["baseline"] == "user reference outputs (refs.npz)"
    assert q["baseline_noise"]["fp32_vs_user_reference"]["logits"] < 1e-5
    r = pytester.runpytest(*common, f"--trt-reference-outputs={user_data['refs_wrong']}")
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(["*[[]logits] ref_error_ratio*FAILED*"])


def test_calibration_inputs_feed_int8(
    pytester: pytest.Pytester, two_in: Path, shared_cache: Path, user_data: dict[str, Path]
) -> None:
    out = pytester.path / "out.json"
    r = pytester.runpytest(
        *fast_args(shared_cache), f"--trt-onnx={two_in}", f"--trt-shapes={SHAPES}", "--trt-backend=onnxruntime",
        "--trt-precision=int8", f"--trt-calib-inputs={user_data['inputs']}", f"--benchmark-json={out}",
    )  # fmt: skip
    r.assert_outcomes(passed=1)
    rec = next(iter(_records(out).values()))
    assert rec["engine"]["calibration"]["source"] == "npz:inputs.npz(n=6)"


# -- large graphs: external data, cached by content ----------------------------------------------


def test_external_data_is_cached_by_content_not_path(
    pytester: pytest.Pytester, two_in: Path, tmp_path: Path
) -> None:
    first = tmp_path / "a"
    first.mkdir()
    onnx.save_model(
        onnx.load(str(two_in)),
        str(first / "big.onnx"),
        save_as_external_data=True,
        location="big.weights",
        size_threshold=0,
    )
    assert (first / "big.weights").stat().st_size > 1000 and (first / "big.onnx").stat().st_size < 2000
    cache = tmp_path / "cache"
    args = [
        *fast_args(cache),
        f"--trt-shapes={SHAPES}",
        "--trt-backend=onnxruntime",
        "--trt-precision=int8",
        "--trt-profile=static",
    ]
    pytester.runpytest(*args, f"--trt-onnx={first / 'big.onnx'}").assert_outcomes(passed=1)
    moved = tmp_path / "b"
    first.rename(moved)
    r = pytester.runpytest(*args, f"--trt-onnx={moved / 'big.onnx'}")
    r.assert_outcomes(passed=1)
    r.stdout.fnmatch_lines(["*onnx-qdq-int8: 0 built, * reused*onnx-user-static: 0 built, 1 reused*"])
    (moved / "big.weights").unlink()
    r = pytester.runpytest(*args, f"--trt-onnx={moved / 'big.onnx'}")
    assert (
        r.ret == pytest.ExitCode.USAGE_ERROR
    )  # an unreadable --trt-onnx file stops the run before it starts
    r.stderr.fnmatch_lines(["*external data files that are missing*big.weights*"])


@pytest.mark.parametrize("content", [None, b"not an onnx model"], ids=["missing", "garbage"])
def test_an_unreadable_onnx_file_is_a_usage_error_before_anything_runs(
    pytester: pytest.Pytester, tmp_path: Path, content: bytes | None
) -> None:
    path = tmp_path / "model.onnx"
    if content is not None:
        path.write_bytes(content)
    r = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--trt-device=cpu", f"--trt-onnx={path}")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines([f"*--trt-onnx {path}*"])
    assert "passed" not in r.stdout.str() and "error" not in r.stdout.str().lower()


HINTED = """
from pytest_trt.engines.onnxrt.backend import OnnxRuntimeBackend
from pytest_trt.engines.recipes import Recipe


class Hinted(OnnxRuntimeBackend):
    '''fp16 the way OpenVINO does it: a precision hint on the fp32 graph, not a converted graph.'''

    name = "hinted"

    def recipe(self, spec):
        if spec.precision != "fp16":
            return super().recipe(spec)
        return Recipe("fp16", "hinted-f16", tool="a precision hint", details={"inference_precision": "f16"})


def pytest_trt_register_backends(register):
    register("hinted", Hinted)
"""


def _fp16_run(
    pytester: pytest.Pytester, cache: Path, onnx: str, *extra: str, backends: str = "onnxruntime"
) -> dict[str, dict[str, Any]]:
    """The two-input graph's fp16 cases (``onnx``: its path, with any suffix), each result by its case."""
    out = pytester.path / "run.json"
    r = pytester.runpytest_inprocess(
        *fast_args(cache), f"--trt-onnx={onnx}", f"--trt-shapes={SHAPES}", *extra,
        f"--trt-backend={backends}", "--trt-precision=fp16", f"--benchmark-json={out}",
    )  # fmt: skip
    assert r.ret == 0, r.stdout.str()[-2000:]
    return _records(out)


def test_an_fp16_engine_is_exact_only_against_the_graph_it_was_built_from(
    pytester: pytest.Pytester, shared_cache: Path, two_in: Path
) -> None:
    """Both engines are judged against ONNX Runtime running the fp16-converted graph; only the engine
    built from that graph may call it exact (and be held to the exact tolerance)."""
    pytester.makeconftest(HINTED)
    cases = _fp16_run(pytester, shared_cache, str(two_in), backends="onnxruntime,hinted")
    refs = {ei["backend"]: ei["quality"]["reference"] for ei in cases.values()}
    assert refs["onnxruntime"]["exact"] is True and "exact_ref_distance_ratio" in refs["onnxruntime"]
    assert refs["hinted"]["exact"] is False and "ref_distance_ratio" in refs["hinted"]


def test_the_fp16_reference_is_the_very_graph_the_engine_was_built_from(
    pytester: pytest.Pytester, tmp_path: Path, two_in: Path
) -> None:
    """AutoCast's graph depends on the samples it runs; a reference made without them was another
    graph (PP-OCRv4's detector: 680 nodes against the engine's 685), judged as if exact, and converted
    twice (37 s each on 2 cores)."""
    (ei,) = _fp16_run(pytester, tmp_path, str(two_in)).values()
    assert ei["quality"]["reference"]["exact"] is True
    assert len(list((tmp_path / "onnx-fp16-converted").rglob("*.onnx"))) == 1


def test_the_size_hint_keeps_the_axes_the_graph_fixes(tmp_path: Path) -> None:
    """A recurrent state fixed at 2 on axis 0 (as silero VAD's ``state: float32[2, batch, 128]``): the
    hint must not tell the user to give it a 1 there."""
    import onnx
    from onnx import TensorProto, helper

    state = helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "batch", 128])
    out = helper.make_tensor_value_info("stateN", TensorProto.FLOAT, [2, "batch", 128])
    graph = helper.make_graph([helper.make_node("Identity", ["state"], ["stateN"])], "g", [state], [out])
    path = tmp_path / "state.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(onnx_shapes.ShapeError, match=r"--trt-shapes state:2xNx128 \(N: your size\)"):
        onnx_models.spec_for_onnx("m", path)


@pytest.mark.parametrize(
    ("suffix", "option", "trained"),
    [("", (), True), (":untrained", (), False), ("", ("--trt-onnx-trained=no",), False)],
    ids=["trained", "file-untrained", "option-untrained"],
)
def test_an_onnx_file_can_be_declared_untrained(
    pytester: pytest.Pytester,
    shared_cache: Path,
    two_in: Path,
    suffix: str,
    option: tuple[str, ...],
    trained: bool,
) -> None:
    """Untrained weights: the absolute gates (meant for trained outputs) stand aside for the rule."""
    (ei,) = _fp16_run(pytester, shared_cache, f"{two_in}{suffix}", *option).values()
    cosine = next(g for g in ei["quality"]["gates"] if g["gate"].startswith("cosine_min"))
    assert (cosine["skipped"] is None) is trained, cosine
