"""Inference backends of the YOLO adapter: PyTorch (the model itself), ONNX Runtime, OpenVINO.

An exported backend runs the model's forward pass only; everything around it stays the
adapter's own: ultralytics' letterbox (the predictor's ``preprocess``, same rect/stride rules
as with torch), the index-returning NMS of :mod:`labelwise.yolo_inference` and the class-vector
read-out. So the full class vectors survive: an exported Detect head outputs the same raw
``(B, 4 + nc, anchors)`` tensor as the torch head, an exported Segment head the same
``(B, 4 + nc + nm, anchors)`` tensor and ``(B, nm, h/4, w/4)`` prototypes (its masks and mask
stabilities are then made by :mod:`labelwise.segment_inference` as with torch), an exported
classifier its softmax (B, C).

Exports are made by ultralytics' own exporter (what ``YOLO.export(format=...)`` calls), with
dynamic batch and image shape, fp32, no embedded NMS, and cached under
``<cache_root>/<model version>-<imgsz>/<format>``: a model version is the digest of its weights,
so a retrained model gets a new export and a reload of the same weights reuses the old one.
The export is then given one more graph output, the output of ``feature_layer`` (the last
backbone layer; a classifier's: the input of its Classify head's linear layer, and its OpenVINO
backend reads that ONNX export), so the pooled-features embedding comes from the same forward
pass too.

Nothing is imported or exported at import time; onnx, onnxruntime and openvino are imported
when a backend is built.
"""

from __future__ import annotations

import copy
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

Backend = Literal["torch", "onnx", "openvino"]
BACKENDS: tuple[Backend, ...] = ("torch", "onnx", "openvino")
EXPORT_FORMATS: dict[str, str] = {"onnx": "onnx", "openvino": "openvino"}
FeatureSite = Literal["layer", "head_input"]
"""Where an export's feature output is read: ``layer`` = the output of ultralytics layer
``feature_layer`` (detection, segmentation: the last backbone layer); ``head_input`` = the input of
the graph's last ``Gemm`` (a classifier: its Classify head's pooled linear-layer input)."""
FEATURE_OUTPUT = "labelwise_features"
"""Name of the extra ONNX graph output that carries the feature layer's map (B, D, h, w)."""

_export_lock = threading.Lock()


@dataclass(frozen=True)
class ExportedModel:
    """One cached export.

    Attributes:
        backend: ``onnx`` or ``openvino``.
        path: the ``.onnx`` file, or the folder holding OpenVINO's ``model.xml`` / ``model.bin``.
        reused: True when the cache already held it (no export ran).
    """

    backend: Backend
    path: Path
    reused: bool


def check_backend(backend: str) -> Backend:
    """``backend`` as a :data:`Backend`; ValueError naming the accepted ones otherwise."""
    for known in BACKENDS:
        if backend == known:
            return known
    raise ValueError(f"inference backend must be one of {', '.join(BACKENDS)}; got {backend!r}")


def export_dir(cache_root: Path, version: str, imgsz: int, backend: Backend) -> Path:
    """Where the export of model ``version`` at ``imgsz`` for ``backend`` is cached."""
    return Path(cache_root) / f"{version}-{imgsz}" / backend


def export_model(
    model: Any,
    *,
    version: str,
    backend: Backend,
    imgsz: int,
    batch: int,
    feature_layer: int,
    cache_root: Path,
    features_at: FeatureSite = "layer",
) -> ExportedModel:
    """Export ``model`` (an ultralytics DetectionModel, SegmentationModel or ClassificationModel,
    left unchanged) with ultralytics' exporter, or reuse the cached export.

    The export is written to a fresh temporary folder and renamed into place, so a crash mid-export
    never leaves a half file in the cache and concurrent processes each see a complete one.

    Args:
        model: the torch model; exported from a deep copy.
        version: the model version (weights digest) that keys the cache.
        backend: ``onnx`` or ``openvino``.
        imgsz: the export's nominal image size (the shape is dynamic; it names the cache entry).
        batch: the nominal batch of the trace (dynamic shapes accept any batch).
        feature_layer: the layer whose output becomes the ONNX export's last output.
        cache_root: folder holding every export.
        features_at: where the feature output is read (:data:`FeatureSite`). With
            ``head_input`` the OpenVINO backend reads the ONNX export (which carries the feature
            output) instead of ultralytics' OpenVINO export.
    """
    if backend not in EXPORT_FORMATS:
        raise ValueError(f"only {', '.join(EXPORT_FORMATS)} are exported; got {backend!r}")
    target = export_dir(cache_root, version, imgsz, backend)
    via_onnx = backend == "onnx" or features_at == "head_input"
    artefact = target / ("model.onnx" if via_onnx else "model.xml")
    found = target / "model.onnx" if backend == "onnx" else target
    if artefact.is_file():
        return ExportedModel(backend, found, True)
    from ultralytics.engine.exporter import Exporter

    with _export_lock:
        work = target.parent / f".tmp-{backend}-{uuid.uuid4().hex[:8]}"
        work.mkdir(parents=True, exist_ok=True)
        try:
            clone = copy.deepcopy(model)
            clone.pt_path = str(work / "model.pt")  # the exporter names its outputs after this
            written = Exporter(
                overrides={
                    "format": "onnx" if via_onnx else EXPORT_FORMATS[backend],
                    "imgsz": imgsz,
                    "batch": max(1, batch),
                    "dynamic": True,
                    "simplify": True,
                    "nms": False,
                    "device": "cpu",
                    "verbose": False,
                }
            )(model=clone)
            produced = Path(written)
            staged = work / "out"
            staged.mkdir()
            if via_onnx:
                add_onnx_feature_output(produced, staged / "model.onnx", feature_layer, features_at)
            else:
                for item in produced.iterdir():
                    shutil.move(str(item), staged / item.name)
            if artefact.is_file():  # another process finished first
                return ExportedModel(backend, found, True)
            if target.exists():
                shutil.rmtree(target)
            staged.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return ExportedModel(backend, found, False)


# --------------------------------------------------------------------------------------------
# The feature layer's output in an exported graph
# --------------------------------------------------------------------------------------------
def _inside(node: str, layer: int) -> bool:
    """Whether a node named by an exporter belongs to ultralytics layer ``layer``: ``/model.<L>/``
    (ONNX) or ``__module.model.<L>.`` / ``__module.model.<L>/`` (OpenVINO from TorchScript)."""
    return node.startswith((f"/model.{layer}/", f"__module.model.{layer}.", f"__module.model.{layer}/"))


def layer_output_names(producers: dict[str, str], consumers: dict[str, list[str]], layer: int) -> list[str]:
    """Tensors that layer ``layer`` hands to the rest of the graph (pure).

    Args:
        producers: tensor name -> name of the node that produces it (constants left out).
        consumers: tensor name -> names of the nodes that read it.
        layer: the ultralytics layer index.

    Returns:
        the names of tensors produced inside the layer and read by at least one node outside it.
    """
    return [
        tensor
        for tensor, producer in producers.items()
        if _inside(producer, layer) and any(not _inside(c, layer) for c in consumers.get(tensor, []))
    ]


def layer_input_names(producers: dict[str, str], consumers: dict[str, list[str]], layer: int) -> list[str]:
    """Tensors that layer ``layer`` reads from outside itself (pure; constants must be left out of
    ``producers``). Used on OpenVINO's TorchScript conversion, where an activation module shared
    by every Conv (ultralytics' ``Conv.default_act``) gives a layer's last op the name of another
    layer: the input of the next layer is named reliably."""
    return [
        tensor
        for tensor, producer in producers.items()
        if not _inside(producer, layer) and any(_inside(c, layer) for c in consumers.get(tensor, []))
    ]


def last_gemm_input(graph: Any) -> str:
    """The data input of an ONNX graph's last ``Gemm`` node (a Classify head's linear layer: its
    input is the pooled, flattened head features, (B, D))."""
    gemms = [node for node in graph.node if node.op_type == "Gemm"]
    if not gemms:
        raise RuntimeError("expected a Gemm node (the Classify head's linear layer) in the graph; found none")
    return str(gemms[-1].input[0])


def add_onnx_feature_output(source: Path, target: Path, layer: int, features_at: FeatureSite = "layer") -> Path:
    """Copy the ONNX model ``source`` to ``target`` with one more graph output,
    :data:`FEATURE_OUTPUT`: the (B, D, h, w) float32 output of ultralytics layer ``layer``, or with
    ``features_at="head_input"`` the (B, D) input of the last ``Gemm`` (:func:`last_gemm_input`)."""
    import onnx

    model = onnx.load(str(source))
    graph = model.graph
    producers = {out: node.name for node in graph.node for out in node.output}
    consumers: dict[str, list[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.name)
    names = ([last_gemm_input(graph)] if features_at == "head_input"
             else layer_output_names(producers, consumers, layer))
    if len(names) != 1:
        raise RuntimeError(
            f"expected exactly one output tensor of layer {layer} in {source}; found {names}"
        )
    identity = onnx.helper.make_node("Identity", [names[0]], [FEATURE_OUTPUT], name="labelwise_features")
    graph.node.append(identity)
    graph.output.append(onnx.helper.make_tensor_value_info(FEATURE_OUTPUT, onnx.TensorProto.FLOAT, None))
    onnx.save(model, str(target))
    return target


# --------------------------------------------------------------------------------------------
# Runners
# --------------------------------------------------------------------------------------------
HEAD_OUTPUTS = ("output0", "output1")
"""The exporter's names of the head outputs: the raw head, then (segmentation) the prototypes."""


def _check_outputs(path: Path, outputs: list[str]) -> int:
    """How many head outputs an export has, after checking its outputs are ``output0`` (and
    ``output1``), then :data:`FEATURE_OUTPUT`."""
    heads = len(outputs) - 1
    if not 1 <= heads <= len(HEAD_OUTPUTS) or outputs != [*HEAD_OUTPUTS[:heads], FEATURE_OUTPUT]:
        raise RuntimeError(f"{path} must have outputs ['output0', {FEATURE_OUTPUT!r}] (detection) or "
                           f"['output0', 'output1', {FEATURE_OUTPUT!r}] (segmentation); got {outputs}")
    return heads


class OnnxRunner:
    """ONNX Runtime session on the CPU over an export from :func:`export_model`.

    Called with the predictor's batch (B, 3, H, W) float32; returns the head outputs as torch
    tensors (the raw head (B, 4 + nc [+ nm], anchors), then a segmentation model's prototypes)
    and the pooled features (B, D) float32.
    """

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = Path(path)
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.heads = _check_outputs(self.path, [o.name for o in self._session.get_outputs()])
        self._input = self._session.get_inputs()[0].name

    def __call__(self, im: "torch.Tensor") -> tuple[tuple["torch.Tensor", ...], np.ndarray]:
        import torch

        *heads, feats = self._session.run(None, {self._input: np.ascontiguousarray(im.cpu().numpy(), np.float32)})
        return (tuple(torch.from_numpy(np.asarray(h, np.float32)) for h in heads),
                pooled_from_map(np.asarray(feats)))


class OpenVinoRunner:
    """OpenVINO compiled model on the CPU over an export from :func:`export_model`.

    The feature layer's output is added to ultralytics' OpenVINO export as its last output before
    compiling; the others are the head outputs (as :class:`OnnxRunner` returns them). A folder
    holding ``model.onnx`` instead (an export whose features are read at the head's input) is
    read as it is: its last output is already the features.
    """

    def __init__(self, folder: Path, threads: int, feature_layer: int) -> None:
        import openvino as ov

        core = ov.Core()
        onnx_file = Path(folder) / "model.onnx"
        if onnx_file.is_file():
            model = core.read_model(str(onnx_file))
        else:
            model = core.read_model(str(Path(folder) / "model.xml"))
            self._add_feature_output(model, folder, feature_layer)
        # f32: on CPUs with bf16 units OpenVINO would otherwise infer in bf16 (class scores off by ~1e-2)
        config = {
            "INFERENCE_NUM_THREADS": max(1, threads),
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "f32",
        }
        self.path = Path(folder)
        self._compiled = core.compile_model(model, "CPU", config)
        self._request = self._compiled.create_infer_request()
        self.heads = len(self._compiled.outputs) - 1
        if not 1 <= self.heads <= len(HEAD_OUTPUTS):
            raise RuntimeError(f"{folder} must have 1 or 2 head outputs (detection, segmentation) before "
                               f"the features; got {self.heads}")

    @staticmethod
    def _add_feature_output(model: Any, folder: Path, feature_layer: int) -> None:
        """Add the output of ultralytics layer ``feature_layer`` (the input of the next layer) to
        ``model``'s outputs, last."""
        producers: dict[str, str] = {}
        ports: dict[str, Any] = {}
        consumers: dict[str, list[str]] = {}
        for op in model.get_ops():
            if op.get_type_name() in {"Constant", "Parameter"}:
                continue
            for i, out in enumerate(op.outputs()):
                key = f"{op.get_friendly_name()}:{i}"
                producers[key] = op.get_friendly_name()
                ports[key] = out
                consumers[key] = [t.get_node().get_friendly_name() for t in out.get_target_inputs()]
        names = layer_input_names(producers, consumers, feature_layer + 1)
        if len(names) != 1:
            raise RuntimeError(
                f"expected exactly one input of layer {feature_layer + 1} (the output of layer "
                f"{feature_layer}) in {folder}; found {names}"
            )
        model.add_outputs([ports[names[0]]])

    def __call__(self, im: "torch.Tensor") -> tuple[tuple["torch.Tensor", ...], np.ndarray]:
        import torch

        result = self._request.infer([np.ascontiguousarray(im.cpu().numpy(), np.float32)])
        heads = tuple(torch.from_numpy(np.array(result[self._compiled.output(i)], np.float32))
                      for i in range(self.heads))
        return heads, pooled_from_map(np.asarray(result[self._compiled.output(self.heads)]))


def pooled_from_map(feature_map: np.ndarray) -> np.ndarray:
    """(B, D, h, w) -> (B, D) float32 mean over h and w (ultralytics' ``embed`` pooling); an
    already pooled (B, D) map is returned as float32."""
    if feature_map.ndim == 2:
        return feature_map.astype(np.float32)
    if feature_map.ndim != 4:
        raise ValueError(f"expected a (B, D, h, w) feature map; got shape {feature_map.shape}")
    return feature_map.astype(np.float32).mean(axis=(2, 3), dtype=np.float64).astype(np.float32)


def build_runner(
    backend: Backend,
    model: Any,
    *,
    version: str,
    imgsz: int,
    batch: int,
    feature_layer: int,
    threads: int,
    cache_root: Path,
    features_at: FeatureSite = "layer",
) -> OnnxRunner | OpenVinoRunner:
    """Export (or reuse) ``model`` for ``backend`` and open a runner on it."""
    exported = export_model(
        model,
        version=version,
        backend=backend,
        imgsz=imgsz,
        batch=batch,
        feature_layer=feature_layer,
        cache_root=cache_root,
        features_at=features_at,
    )
    if backend == "onnx":
        return OnnxRunner(exported.path, threads)
    if backend == "openvino":
        return OpenVinoRunner(exported.path, threads, feature_layer)
    raise ValueError(f"no runner for backend {backend!r}; expected onnx or openvino")


def attach_runner(predictor: Any, model: Any, settings: Any, *, version: str, feature_layer: int,
                  cache_root: Path, features_at: FeatureSite = "layer") -> None:
    """Give ``predictor`` (a class-vector predictor after ``setup_model``) the runner of
    ``settings.backend`` (a :class:`~labelwise.config.DetectorSettings`) in place of the torch
    forward (``torch`` needs none: refused here)."""
    if settings.backend == "torch":
        raise ValueError("the torch backend runs the model itself; expected onnx or openvino")
    from labelwise.ultralytics_env import resolve_threads

    predictor.runner = build_runner(
        check_backend(settings.backend), model, version=version, imgsz=settings.imgsz,
        batch=settings.batch, feature_layer=feature_layer, threads=resolve_threads(settings.threads),
        cache_root=cache_root, features_at=features_at,
    )
