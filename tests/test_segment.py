"""Instance segmentation, part 1: the Segment head of every family against Ultralytics' parameter counts, its outputs,
and the import of Segment / Segment26 files (checkpoints the test writes, and the shipped PennFudan seg models
against ONNX Runtime's golden outputs)."""

import numpy as np
import pytest

from tests.conftest import SHARED
from tests.ultralytics_layouts import write_ultralytics_checkpoint
from tfyolo.errors import ConfigError
from tfyolo.models.model_config import ModelConfig

# Ultralytics' own summaries at 80 classes ("gradients": without the fixed 16-weight DFL conv, which is arithmetic in
# tfyolo's decode): cfg/models/11/yolo11-seg.yaml; cfg/models/26/yolo26-seg.yaml with both heads and Proto26's
# training-only semseg (reg_max 1: nothing fixed). yolov8-seg.yaml states none: yolov8.yaml's gradients plus
# Segment's own weights by parse_model's arithmetic (npr = P3 width, c4 = max(P3 / 4, 32)), the figures Ultralytics'
# docs give (3.4 / 11.8 / 27.3 / 46.0 / 71.8 M).
SEGMENT_PARAMETERS = {
    "yolov8": {"n": 3_409_952, "s": 11_821_040, "m": 27_285_952, "l": 45_997_712, "x": 71_827_872},
    "yolo11": {"n": 2_876_832, "s": 10_113_232, "m": 22_420_880, "l": 27_678_352, "x": 62_142_640},
    "yolo26": {"n": 3_126_280, "s": 11_505_800, "m": 27_112_072, "l": 31_515_528, "x": 70_693_800},
}


def trainable_parameters(model):
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)


def segmenter(family, scale="n", num_classes=2, head=None, input_size=64):
    from tfyolo.models.yolo_detector import build_yolo_detector

    config = ModelConfig(
        num_classes=num_classes, family=family, scale=scale, head=head, input_size=input_size, task="segment"
    )
    return build_yolo_detector(config)


def cases():
    """Every family and scale; the fast suite builds n and s (the big ones take seconds each)."""
    return [
        (family, scale) if scale in "ns" else pytest.param(family, scale, marks=pytest.mark.large)
        for family in SEGMENT_PARAMETERS
        for scale in "nsmlx"
    ]


@pytest.mark.parametrize("family, scale", cases())
def test_segment_parameter_counts_equal_ultralytics(family, scale):
    head = "both" if family == "yolo26" else None
    model = segmenter(family, scale, num_classes=80, head=head)
    assert trainable_parameters(model) == SEGMENT_PARAMETERS[family][scale]


def test_the_segment_outputs_are_named_and_shaped_as_detection_s_are():
    """Coefficients per anchor in anchor order beside the two detection outputs; prototypes NHWC at 1/4 the input."""
    model = segmenter("yolo11")
    shapes = {name: tuple(tensor.shape) for name, tensor in model.output.items()}
    assert shapes == {
        "box_distribution": (None, 84, 64),
        "class_logits": (None, 84, 2),
        "mask_coefficients": (None, 84, 32),
        "mask_prototypes": (None, 16, 16, 32),
    }
    both = segmenter("yolo26", head="both")
    assert sorted(both.output) == sorted(
        ["box_distribution", "class_logits", "one2one_box_distribution", "one2one_class_logits"]
        + ["mask_coefficients", "one2one_mask_coefficients", "mask_prototypes", "semantic_logits"]
    )
    assert tuple(both.output["semantic_logits"].shape) == (None, 8, 8, 2)


def test_one_yolo26_head_drops_the_other_head_and_the_training_only_semantic_branch():
    both = segmenter("yolo26", num_classes=80, head="both")
    one2one = segmenter("yolo26", num_classes=80)
    dropped = [
        layer
        for layer in both.layers
        if (layer.name.startswith("head") and "_o2o_" not in layer.name and "proto" not in layer.name)
        or layer.name.startswith("head_semseg")
    ]
    parameters = sum(int(np.prod(w.shape)) for layer in dropped for w in layer.trainable_weights)
    assert trainable_parameters(one2one) == SEGMENT_PARAMETERS["yolo26"]["n"] - parameters
    assert "semantic_logits" not in one2one.output


@pytest.mark.parametrize("family", sorted(SEGMENT_PARAMETERS))
def test_every_segmenter_is_a_flat_graph_of_known_layers_in_the_family_s_sections(family):
    from tfyolo.models.families import FAMILIES
    from tfyolo.models.model_file_check import KNOWN_LAYERS

    model = segmenter(family)
    kinds = {type(layer).__name__ for layer in model.layers}
    assert "Conv2DTranspose" in kinds and kinds <= KNOWN_LAYERS, kinds - KNOWN_LAYERS
    # Every layer with weights of the Segment head is in the head section (what --freeze and staged QAT read).
    added = [layer for layer in model.layers if "mask" in layer.name or "proto" in layer.name]
    assert {FAMILIES[family].section_of(layer.name) for layer in added if layer.weights} == {"head"}


def test_detection_configs_and_graphs_are_what_they_were_before_tasks():
    from tfyolo.models.yolo_detector import build_yolo_detector

    config = ModelConfig(num_classes=2, input_size=64)
    assert config.task == "detect" and "task" not in config.to_dict()
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert sorted(build_yolo_detector(config).output) == ["box_distribution", "class_logits"]
    segment = config.replace(task="segment")
    assert ModelConfig.from_dict(segment.to_dict()).task == "segment"
    with pytest.raises(ConfigError, match=r"task must be one of \['detect', 'segment'\], received 'pose'"):
        ModelConfig(num_classes=2, task="pose")


def test_a_segmenter_saves_and_loads_through_the_model_file_check(tmp_path):
    from tfyolo.models.model_io import load_keras_model, save_model_atomic

    model = segmenter("yolov8")
    save_model_atomic(model, tmp_path / "seg.keras")
    loaded = load_keras_model(tmp_path / "seg.keras")
    images = np.random.default_rng(0).random((1, 64, 64, 3), np.float32)
    for name, tensor in model(images, training=False).items():
        np.testing.assert_array_equal(loaded(images, training=False)[name].numpy(), tensor.numpy())


# === Import of checkpoints the test writes (tests/ultralytics_layouts.py: a second reading of Ultralytics' sources) ===


def learned(state):
    return sum(a.size for k, a in state.items() if not k.endswith(("num_batches_tracked", "dfl.conv.weight")))


@pytest.mark.parametrize("family", ["yolov8", "yolo11"])
def test_a_segment_checkpoint_imports_completely(family, tmp_path):
    from tfyolo.importers.ultralytics_import import import_weights

    path = tmp_path / "best.pt"
    state = write_ultralytics_checkpoint(path, family, "n", num_classes=2, task="segment")
    model, metadata = import_weights(path, input_size=64)
    assert (metadata["family"], metadata["model"]["task"], metadata["head"]) == (family, "segment", "one2many")
    # The import refuses unless every tensor was used: the parameter counts agree with the file's.
    assert sum(int(np.prod(w.shape)) for w in model.weights) == learned(state)
    # ConvTranspose2d's (in, out, kH, kW) weight is Keras' (kH, kW, out, in), unflipped.
    segment = f"model.{ {'yolov8': 22, 'yolo11': 23}[family] }"
    upsample = state[f"{segment}.proto.upsample.weight"].astype(np.float32)
    kernel, bias = model.get_layer("head_proto_upsample").get_weights()
    np.testing.assert_array_equal(kernel, upsample.transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(bias, state[f"{segment}.proto.upsample.bias"].astype(np.float32))
    coefficients = state[f"{segment}.cv4.2.2.weight"].astype(np.float32)
    np.testing.assert_array_equal(
        model.get_layer("head2_mask_pred").get_weights()[0], coefficients.transpose(2, 3, 1, 0)
    )


@pytest.fixture(scope="module")
def yolo26_seg(tmp_path_factory):
    path = tmp_path_factory.mktemp("y26seg") / "best.pt"
    return path, write_ultralytics_checkpoint(path, "yolo26", "n", num_classes=2, task="segment")


def test_a_yolo26_segment_checkpoint_imports_both_heads_and_the_semantic_branch(yolo26_seg):
    from tfyolo.importers.ultralytics_import import import_weights

    path, state = yolo26_seg
    model, metadata = import_weights(path, input_size=64, head="both")
    assert "left_out" not in metadata["source"] and sum(int(np.prod(w.shape)) for w in model.weights) == learned(state)
    refine = state["model.23.proto.feat_refine.1.conv.weight"].astype(np.float32)
    np.testing.assert_array_equal(
        model.get_layer("head_proto_refine2_conv").get_weights()[0], refine.transpose(2, 3, 1, 0)
    )
    one2one = state["model.23.one2one_cv4.0.2.bias"].astype(np.float32)
    np.testing.assert_array_equal(model.get_layer("head0_o2o_mask_pred").get_weights()[1], one2one)


def test_the_default_yolo26_segment_import_names_the_head_and_the_branch_it_left_out(yolo26_seg):
    from tfyolo.importers.ultralytics_import import import_weights

    model, metadata = import_weights(yolo26_seg[0], input_size=64)
    assert (metadata["head"], metadata["postprocess"]) == ("one2one", "topk")
    assert metadata["source"]["left_out"]["modules"] == [
        "model.23.cv2",
        "model.23.cv3",
        "model.23.cv4",
        "model.23.proto.semseg",
    ]
    assert "the training-only proto.semseg" in metadata["source"]["left_out"]["why"]
    assert "semantic_logits" not in model.output


def test_a_segment_file_read_as_detection_is_refused_in_one_line(tmp_path, monkeypatch):
    """A Segment head where the file's model class says detection: the layout does not match, nothing is built."""
    from tfyolo.errors import ModelError
    from tfyolo.importers import ultralytics_source
    from tfyolo.importers.ultralytics_import import import_weights

    path = tmp_path / "best.pt"
    write_ultralytics_checkpoint(path, "yolo11", "n", task="segment")
    original = ultralytics_source._from_checkpoint

    def as_detection(source_path):
        source = original(source_path)
        return source.__class__(**{**source.__dict__, "task": "detect"})

    monkeypatch.setattr(ultralytics_source, "_from_checkpoint", as_detection)
    with pytest.raises(ModelError, match=r"not a detection model of a family tfyolo imports .*'Segment'"):
        import_weights(path, input_size=64)


def fused_export(checkpoint, out, task="segment"):
    """An Ultralytics-style ONNX file of `checkpoint`'s weights: BatchNorm folded into each convolution's bias, as
    the exporter's fuse() does, kept under the module names, with the training-only semseg dropped. It holds no
    compute graph: the importer reads initializers and metadata only (and activations where Conv nodes exist)."""
    import onnx
    from onnx import helper, numpy_helper

    from tfyolo.importers.ultralytics_source import read_source

    source = read_source(checkpoint)
    state = {k: v.astype(np.float32) for k, v in source.state.items() if ".semseg." not in k}
    tensors = {}
    for name, value in state.items():
        if name.endswith(".conv.weight") and f"{name[:-12]}.bn.weight" in state:
            prefix = name[:-12]
            gain = state[f"{prefix}.bn.weight"] / np.sqrt(state[f"{prefix}.bn.running_var"] + 1e-3)
            tensors[name] = value * gain[:, None, None, None]
            tensors[f"{prefix}.conv.bias"] = state[f"{prefix}.bn.bias"] - state[f"{prefix}.bn.running_mean"] * gain
        elif ".bn." not in name:
            tensors[name] = value
    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["output0"])],
        "fused",
        [helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output0", onnx.TensorProto.FLOAT, None)],
        [numpy_helper.from_array(value, name) for name, value in tensors.items()],
    )
    model = helper.make_model(graph)
    names = dict(enumerate(source.names))
    for key, value in {"task": task, "imgsz": str([source.imgsz] * 2), "names": str(names)}.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, out)
    return out


def test_a_fused_segment_export_imports_to_the_checkpoint_s_function(yolo26_seg, tmp_path):
    pytest.importorskip("onnx")
    from tfyolo.importers.ultralytics_import import import_weights

    checkpoint, _ = yolo26_seg
    from_pt, _ = import_weights(checkpoint, head="one2many")
    from_onnx, metadata = import_weights(fused_export(checkpoint, tmp_path / "best.onnx"), head="one2many")
    assert (metadata["model"]["task"], metadata["source"]["format"]) == ("segment", "ultralytics onnx export")
    images = np.random.default_rng(1).random((1, 64, 64, 3), np.float32)
    expected = from_pt(images, training=False)
    for name, tensor in from_onnx(images, training=False).items():
        np.testing.assert_allclose(tensor.numpy(), expected[name].numpy(), atol=1e-4, err_msg=name)


# === The shipped PennFudan seg models against ONNX Runtime (golden_io.npz; ../shared, SOURCE.md beside each) ===


def shipped(family):
    folder = SHARED / "weights" / f"ultralytics_{family}_pennfudan_seg"
    if not (folder / "best.pt").is_file():
        pytest.skip(f"needs ../shared/weights/ultralytics_{family}_pennfudan_seg beside the project (present in CI)")
    return folder


def ultralytics_rows(outputs, size, reg_max, prefix=""):
    """tfyolo's raw outputs in the layout of Ultralytics' output0: (batch, 4 + classes + 32, anchors), cx cy w h px."""
    from tfyolo.ops.boxes import convert_format
    from tfyolo.ops.decode import decode_predictions

    boxes, scores = decode_predictions(
        outputs[f"{prefix}box_distribution"].numpy(), outputs[f"{prefix}class_logits"].numpy(), size, reg_max=reg_max
    )
    coefficients = outputs[f"{prefix}mask_coefficients"].numpy()
    return np.concatenate([convert_format(boxes * size, "xyxy", "cxcywh"), scores, coefficients], -1).transpose(0, 2, 1)


def golden_inputs(folder):
    golden = np.load(folder / "golden_io.npz")
    return golden, (golden["images"] / 255.0).astype(np.float32)  # SOURCE.md: the model input is images / 255


def assert_matches(rows, prototypes, expected_rows, expected_prototypes):
    """Boxes within 1e-3 px; scores, coefficients and prototypes within float32 arithmetic (measured: at most
    1.6e-5 on prototypes up to 10.2, 3e-6 on coefficients, 8.3e-7 on scores)."""
    np.testing.assert_allclose(rows[:, :4], expected_rows[:, :4], atol=1e-3)
    np.testing.assert_allclose(rows[:, 4:], expected_rows[:, 4:], atol=1e-5)
    np.testing.assert_allclose(prototypes.transpose(0, 3, 1, 2), expected_prototypes, atol=5e-5)


@pytest.mark.large
@pytest.mark.parametrize("family", ["yolov8n", "yolo11n"])
@pytest.mark.parametrize("source", ["best.pt", "fused best.onnx"])
def test_imported_segmenters_match_onnx_runtime(family, source, tmp_path):
    """Ultralytics ships no seg ONNX file here: the .onnx path reads an export this test folds from best.pt."""
    from tfyolo.importers.ultralytics_import import import_weights

    folder = shipped(family)
    path = folder / "best.pt"
    if source != "best.pt":
        pytest.importorskip("onnx")
        path = fused_export(path, tmp_path / "best.onnx")
    model, metadata = import_weights(path, input_size=320)
    assert (metadata["model"]["task"], metadata["num_classes"]) == ("segment", 1)
    golden, images = golden_inputs(folder)
    outputs = model(images, training=False)
    assert_matches(
        ultralytics_rows(outputs, 320, 16), outputs["mask_prototypes"].numpy(), golden["output0"], golden["output1"]
    )


@pytest.mark.large
@pytest.mark.parametrize("source", ["best.pt", "fused best.onnx"])
def test_both_yolo26_segment_heads_match_onnx_runtime(source, tmp_path):
    """The one-to-many head against the default export's output0; the one-to-one head, ranked by score outside the
    graph, against the end-to-end export's (300, 38) rows scoring over 0.01 (under it near-ties swap between any
    two runtimes, SOURCE.md). The test-folded .onnx holds both heads, so it is imported one head at a time."""
    from tfyolo.importers.ultralytics_import import import_weights

    folder = shipped("yolo26n")
    path = folder / "best.pt"
    if source != "best.pt":
        pytest.importorskip("onnx")
        path = fused_export(path, tmp_path / "best.onnx")
    golden, images = golden_inputs(folder)
    one2many, _ = import_weights(path, input_size=320, head="one2many")
    outputs = one2many(images, training=False)
    rows = ultralytics_rows(outputs, 320, 1)
    assert_matches(rows, outputs["mask_prototypes"].numpy(), golden["output0_one2many"], golden["output1"])
    one2one, metadata = import_weights(path, input_size=320)
    assert metadata["postprocess"] == "topk"
    outputs = one2one(images, training=False)
    rows = ultralytics_rows(outputs, 320, 1).transpose(0, 2, 1)
    for image, expected in enumerate(golden["output0"]):
        expected = expected[expected[:, 4] > 0.01]
        top = rows[image][np.argsort(-rows[image][:, 4], kind="stable")[: len(expected)]]
        corners = np.concatenate([top[:, :2] - top[:, 2:4] / 2, top[:, :2] + top[:, 2:4] / 2], -1)
        np.testing.assert_allclose(corners, expected[:, :4], atol=1e-3)
        np.testing.assert_allclose(top[:, 4], expected[:, 4], atol=1e-5)
        np.testing.assert_allclose(top[:, 5:], expected[:, 6:], atol=1e-5)
    np.testing.assert_allclose(outputs["mask_prototypes"].numpy().transpose(0, 3, 1, 2), golden["output1"], atol=5e-5)


@pytest.mark.large
def test_the_shipped_yolo26_segmenter_holds_ultralytics_parameter_count():
    """SOURCE.md: 3,053,055 parameters, both heads and the semantic branch (reg_max 1: no DFL)."""
    from tfyolo.importers.ultralytics_import import import_weights

    model, _ = import_weights(shipped("yolo26n") / "best.pt", head="both")
    assert trainable_parameters(model) == 3_053_055


@pytest.mark.large
@pytest.mark.parametrize("family", sorted(SEGMENT_PARAMETERS))
def test_the_segment_head_takes_fake_quantization(family):
    """tfmot wraps every layer of the head, the Conv2DTranspose upsample with its default 8-bit config (tfyolo's
    QAT builder for YOLO11's and YOLO26's attention; tfmot's own quantize_model takes YOLOv8 as it is)."""
    import tensorflow_model_optimization as tfmot

    from tfyolo.models.families import FAMILIES
    from tfyolo.qat.qat_model import build_qat_model

    model = segmenter(family)
    if family == "yolov8":
        quantized = tfmot.quantization.keras.quantize_model(model)
    else:
        quantized = build_qat_model(model, family=FAMILIES[family])
    outputs = quantized(np.zeros((1, 64, 64, 3), np.float32))
    assert tuple(outputs["mask_prototypes"].shape) == (1, 16, 16, 32)
    assert type(quantized.get_layer("quant_head_proto_upsample")).__name__ == "QuantizeWrapperV2"


@pytest.mark.large  # 16 s of conversion; the detector's rule is in the fast suite (tests/test_mixed_precision.py)
def test_calibration_finds_a_segmenter_s_mask_outputs_and_keeps_their_average():
    """The fp32 TFLite of a tiny segmenter, every activation calibrated to average [-1, 1] and extremes [-2, 2].
    Oracle, found by name and not by the graph walk the code does: the mask coefficients' tensors (each level's
    `head<i>_mask_pred`, its reshape `head<i>_mask_flat`, the `mask_coefficients` concatenation) and the prototypes'
    (`head_proto_cv3_*`, the SiLU's sigmoid and product that make the `mask_prototypes` output) are the ones found
    for the mask outputs, and they keep the average (tfyolo.models.prediction_outputs says why); the box tensors
    take both extremes, the class tensors the top, as for a detector."""
    import re

    from tensorflow.lite.tools import flatbuffer_utils

    from tfyolo.models.tasks import MASK_COEFFICIENTS, MASK_PROTOTYPES
    from tfyolo.quantization.aeq import choose_ranges
    from tfyolo.quantization.converter import convert
    from tfyolo.quantization.head_tensors import prediction_tensor_names
    from tfyolo.quantization.recipe import Recipe

    fp32 = convert(segmenter("yolo11", num_classes=1), Recipe(name="fp32", mode="fp32"))
    subgraph = flatbuffer_utils.read_model_from_bytearray(bytearray(fp32)).subgraphs[0]
    names = [subgraph.tensors[index].name.decode() for op in subgraph.operators for index in op.outputs]
    span = {"min": np.array([-1.0]), "max": np.array([1.0])}
    span.update(extreme_min=np.array([-2.0]), extreme_max=np.array([2.0]))
    predictions = prediction_tensor_names(fp32)
    chosen = choose_ranges({name: span for name in names}, "outputs_min_max", predictions)
    ranges = {name: (float(entry["min"][0]), float(entry["max"][0])) for name, entry in chosen.items()}

    def named(expression):
        return {name for name in names if re.search(expression, name)}

    coefficients = named(r"(^|/)(head\d+_mask_(pred|flat)/|mask_coefficients$)")
    prototypes = named(r"(^|/)(head_proto_cv3_[a-z]+/|mask_prototypes(/|$))")
    boxes = named(r"(^|/)(head\d+_box_[a-z]+/|box_distribution$)")
    classes = named(r"(^|/)(head\d+_cls_[a-z]+/|class_logits$)")
    assert len(coefficients) >= 7 and len(prototypes) >= 2 and len(boxes) >= 4 and len(classes) >= 4
    assert (predictions[MASK_COEFFICIENTS], predictions[MASK_PROTOTYPES]) == (coefficients, prototypes)
    assert {name for name, found in ranges.items() if found == (-2.0, 2.0)} == boxes
    assert {name for name, found in ranges.items() if found == (-1.0, 2.0)} == classes
    assert {ranges[name] for name in coefficients | prototypes} == {(-1.0, 1.0)}


@pytest.mark.large
def test_a_quantization_aware_segmenter_passes_the_model_file_check(tmp_path):
    """tfmot's config of the wrapped Conv2DTranspose (the prototypes' upsampling) is among the objects a model file
    may name: a segmenter's QAT model loads for conversion (it was refused, and no seg QAT model could convert)."""
    from tfyolo.models.families import FAMILIES
    from tfyolo.models.model_file_check import check_model_config
    from tfyolo.models.model_io import save_model_atomic
    from tfyolo.qat.qat_model import build_qat_model

    quantized = build_qat_model(segmenter("yolo11", num_classes=1), family=FAMILIES["yolo11"])
    save_model_atomic(quantized, tmp_path / "qat.h5")  # as a QAT run saves its best.h5
    check_model_config(tmp_path / "qat.h5")
