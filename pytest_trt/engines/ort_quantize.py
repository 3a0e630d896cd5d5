"""onnxruntime's post-training quantizer, run the way that keeps trained CNNs accurate.

What loses accuracy with ``quantize_static`` as it comes, measured on ImageNet-trained EfficientNet-Lite0
(docs/int8.md has the numbers):

* a convolution followed by ReLU/ReLU6 gets its output range from the convolution alone (its range
  before the clip, up to hundreds, where the clip keeps [0, 6]) unless the activation is quantized
  too: then the quantizer takes the range after it, as TensorRT's conv+activation fusion does;
* symmetric int8 activations spend half their levels on negative values a ReLU never makes; the CPU
  engines take unsigned asymmetric activations (TensorRT needs symmetric, zero-point 0);
* its entropy calibration builds histograms with as many bins as quantization levels, so there is one
  threshold to choose from, the maximum: "entropy" equals "minmax" byte for byte.  Ranges here are
  computed with 2048 bins (TensorRT's entropy calibrator searches 128 levels in 2048 bins) and handed
  to the quantizer through its calibration cache;
* the layers nearest the input (the stem convolution, the first depthwise one) carry the most error:
  ``exclude`` keeps named nodes in float (``--trt-int8-exclude``; ``auto`` measures which).
"""

from __future__ import annotations

import contextlib
import inspect
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from pytest_trt.models.datasets import Samples
from pytest_trt.models.export import external_files

if TYPE_CHECKING:
    from pytest_trt.engines.recipes import Recipe

# Weight-bearing compute (as ModelOpt's int8 default): quantizing embeddings, LayerNorm inputs and
# residual adds per-tensor wrecked a MiniLM encoder (embedding cosine 0.55) while gaining nothing here.
QUANTIZED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
# Activations quantized with them, so a convolution's output range is the one after its ReLU/ReLU6.
FUSED_ACTIVATIONS = ("Relu", "Clip")
ENTROPY_BINS = 2048


class _Reader:
    """onnxruntime CalibrationDataReader over stacked samples, ``batch`` at a time."""

    def __init__(self, names: tuple[str, ...], arrays: tuple[np.ndarray, ...], batch: int) -> None:
        n = len(arrays[0])
        self.feeds = [
            {name: a[i : i + batch] for name, a in zip(names, arrays, strict=True)}
            for i in range(0, n, batch)
        ]
        self.i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.i >= len(self.feeds):
            return None
        self.i += 1
        return self.feeds[self.i - 1]

    def rewind(self) -> None:
        self.i = 0


def whole_batches(x: np.ndarray, batch: int | None) -> np.ndarray:
    """``x`` padded (its last sample repeated) to a multiple of a static graph's ``batch``: such a graph
    is calibrated in whole batches only."""
    if not batch or len(x) % batch == 0:
        return x
    return np.concatenate([x, np.repeat(x[-1:], batch - len(x) % batch, axis=0)])


def static_batch(model: onnx.ModelProto, input_name: str) -> int | None:
    """The input's fixed batch size, or None when the batch axis is symbolic."""
    for inp in model.graph.input:
        if inp.name == input_name:
            d0 = inp.type.tensor_type.shape.dim[0]
            return int(d0.dim_value) if d0.HasField("dim_value") and d0.dim_value > 0 else None
    return None


def copy_with_weights(src: Path, where: Path) -> Path:
    """``src`` and the external data files it names, copied into the directory ``where``."""
    private = where / src.name
    shutil.copyfile(src, private)
    m = onnx.load(str(src), load_external_data=False)
    for f in external_files(m, src.parent):  # weights stored beside a user's graph go with it
        dst = where / f.relative_to(src.parent)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dst)
    return private


@contextlib.contextmanager
def private_copy(src: Path, prefix: str) -> Iterator[Path]:
    """``src`` copied into a fresh temporary directory: the quantizers write scratch files beside their
    input (``*-inferred.onnx``, ``*_extended.onnx``), which would race between processes in the cache."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield copy_with_weights(src, Path(tmp))


def fused_activations(model: onnx.ModelProto, nodes: Sequence[str]) -> list[str]:
    """The ReLU/Clip nodes that directly follow ``nodes``: quantized with them, so one group."""
    producer = {o: n.name for n in model.graph.node for o in n.output}
    wanted = set(nodes)
    return [
        n.name
        for n in model.graph.node
        if n.op_type in FUSED_ACTIVATIONS and n.input and producer.get(n.input[0]) in wanted
    ]


def quantizable_layers(model: onnx.ModelProto) -> list[str]:
    """The nodes the recipe quantizes (weight-bearing ones; activation x activation MatMuls stay float),
    by name (:class:`Quantizer` names the unnamed ones first)."""
    consts = _constants(model)
    return [
        n.name
        for n in model.graph.node
        if n.op_type in QUANTIZED_OPS and (n.op_type != "MatMul" or any(i in consts for i in n.input))
    ]


def _constants(model: onnx.ModelProto) -> set[str]:
    return {i.name for i in model.graph.initializer} | {
        o for n in model.graph.node if n.op_type == "Constant" for o in n.output
    }


class Quantizer:
    """One calibration of one graph, then as many Q/DQ graphs of it as asked (the whole graph, one layer
    group for the sensitivity report, or all but some layers), each in a private scratch directory."""

    def __init__(
        self,
        src: Path,
        input_names: tuple[str, ...],
        calib: Samples,
        method: str,
        *,
        unsigned_activations: bool,
        reduce_range: bool = False,
        float_bias: bool = False,
    ) -> None:
        self.src, self.method = src, method
        self.unsigned, self.reduce_range, self.float_bias = unsigned_activations, reduce_range, float_bias
        self.model = onnx.load(str(src), load_external_data=False)
        batch = static_batch(self.model, input_names[0]) or 4
        # Whole batches always: the entropy calibrator stacks each tensor's per-batch values into one array.
        arrays = tuple(whole_batches(a, batch) for a in calib.arrays)
        self.reader = _Reader(input_names, arrays, batch)
        self._scratch = tempfile.TemporaryDirectory(prefix="pytest-trt-qdq-")
        self.private = copy_with_weights(src, Path(self._scratch.name))
        if _name_nodes(self.model):  # layers are chosen by name: an unnamed one would never be quantized
            onnx.save_model(self.model, str(self.private))  # weights stay in the copied external files
        self.layers = quantizable_layers(self.model)
        self.ranges: Path | None = Path(self._scratch.name) / "ranges.json"
        self._calibrate()

    @classmethod
    def for_recipe(cls, src: Path, input_names: tuple[str, ...], calib: Samples, recipe: Recipe) -> Quantizer:
        """The quantizer of an onnxruntime int8 recipe, set as its ``details`` say."""
        return cls(
            src,
            input_names,
            calib,
            recipe.calib_method or "entropy",
            unsigned_activations=recipe.details.get("activations") == "u8-asymmetric",
            reduce_range=recipe.details.get("weight_bits") == 7,
            float_bias=recipe.details.get("bias") == "float",
        )

    def close(self) -> None:
        self._scratch.cleanup()

    def __enter__(self) -> Quantizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _calibrate(self) -> None:
        from onnxruntime.quantization import quantize_static

        if "calibration_cache_path" not in inspect.signature(quantize_static).parameters:
            if self.method == "entropy":
                raise ValueError(
                    "this onnxruntime's quantize_static calibrates entropy with as many bins as levels, "
                    "which gives the minmax ranges; pass --trt-calib-method minmax, or install an "
                    "onnxruntime whose quantize_static takes calibration_cache_path"
                )
            self.ranges = None  # the quantizer calibrates each time
            return
        from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

        options: dict[str, Any] = {"symmetric": not self.unsigned}
        if self.method == "entropy":
            options.update(num_bins=ENTROPY_BINS, num_quantized_bins=128)
        if self.method == "percentile":
            options.update(num_bins=ENTROPY_BINS, percentile=99.999)
        # ``*-inferred.onnx`` / the augmented model are written beside the private copy
        infer = self.private.with_name("calib-inferred.onnx")
        from onnxruntime.quantization.quant_utils import load_model_with_shape_infer

        onnx.save_model(load_model_with_shape_infer(self.private), str(infer))
        calibrator = create_calibrator(
            infer,
            [*QUANTIZED_OPS, *FUSED_ACTIVATIONS],
            augmented_model_path=str(self.private.with_name("augmented.onnx")),
            calibrate_method=_calibration_method(self.method),
            extra_options=options,
        )
        self.reader.rewind()
        calibrator.collect_data(self.reader)
        assert self.ranges is not None
        save_tensors_data(calibrator.compute_data(), self.ranges)

    def quantize(self, dst: Path, only: Sequence[str] | None = None, exclude: Sequence[str] = ()) -> None:
        """The Q/DQ graph of every quantizable layer (``only``: of those layers alone), ``exclude`` kept
        in float; each layer quantized with the ReLU/Clip that follows it."""
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

        layers = [n for n in (only if only is not None else self.layers) if n not in set(exclude)]
        nodes = [*layers, *fused_activations(self.model, layers)]
        self.reader.rewind()
        cache = {"calibration_cache_path": str(self.ranges)} if self.ranges is not None else {}
        quantize_static(
            str(self.private),
            str(dst),
            calibration_data_reader=self.reader,
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8 if self.unsigned else QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=self.reduce_range,
            calibrate_method=_calibration_method(self.method),
            nodes_to_quantize=nodes,
            op_types_to_quantize=[*QUANTIZED_OPS, *FUSED_ACTIVATIONS],
            # TensorRT accepts only symmetric (zero-point 0) quantization; the CPU engines take unsigned.
            extra_options={
                "ActivationSymmetric": not self.unsigned,
                "WeightSymmetric": True,
                "QuantizeBias": not self.float_bias,
            },
            **cache,
        )


def _calibration_method(name: str) -> Any:
    """onnxruntime's CalibrationMethod for one of our method names."""
    from onnxruntime.quantization import CalibrationMethod

    return {
        "entropy": CalibrationMethod.Entropy,
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
    }[name]


def _name_nodes(model: onnx.ModelProto) -> bool:
    """Give every unnamed node a name unique in the graph (``Conv_12``: op type and position); True if
    any was unnamed."""
    taken = {n.name for n in model.graph.node if n.name}
    renamed = False
    for k, n in enumerate(model.graph.node):
        if not n.name:
            name = f"{n.op_type}_{k}"
            while name in taken:
                name += "_"
            n.name = name
            taken.add(name)
            renamed = True
    return renamed
