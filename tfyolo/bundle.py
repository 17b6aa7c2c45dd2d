"""The edge handoff bundle: everything a device team needs to reproduce our numbers without TensorFlow.

`make_bundle` returns {relative path: bytes}; the CLI writes them. `verify_bundle` returns a list of problems.
"""

import hashlib
import importlib.metadata
import io
import json
from pathlib import Path, PurePosixPath

import numpy as np

import tfyolo
from tfyolo.data.calibration_images import calibration_paths
from tfyolo.data.detection_dataset import DetectionDataset
from tfyolo.data.images import PAD_VALUE, letterbox, read_image_rgb, to_model_input
from tfyolo.errors import ModelError
from tfyolo.evaluation.runners import TFLiteRunner, quantize
from tfyolo.metadata import find_model_metadata
from tfyolo.models.tasks import MASK_COEFFICIENTS, MASK_PROTOTYPES
from tfyolo.ops.nms import NMSConfig
from tfyolo.quantization.recipes_dir import DEFAULT_CALIBRATION
from tfyolo.tflite_runtime import builtin_code, builtin_operator_names

MANIFEST = "manifest.json"
MANIFEST_DIGEST = "manifest.json.sha256"
REFERENCE_SCRIPT = Path(__file__).with_name("bundle_files") / "reference_infer.py"
# Golden outputs are replayed on the same runtime: float outputs must agree to 1e-4 (relative to the output's
# range), integer outputs to one quantization step (XNNPACK and reference kernels may round differently).
FLOAT_TOLERANCE = 1e-4
INTEGER_TOLERANCE_STEPS = 1
TARGETS_FOLDER = "targets"


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def op_versions(model_content):
    """[(op name, version)] of the flatbuffer's operator codes: runtimes older than the converter may reject
    newer op versions, so the device team needs them."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(model_content), 0))
    names = builtin_operator_names()
    result = []
    for code in model.operatorCodes:
        builtin = builtin_code(code)
        name = names.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            name = f"CUSTOM:{code.customCode.decode() if code.customCode else ''}"
        result.append({"op": name, "version": int(code.version)})
    return sorted(result, key=lambda entry: (entry["op"], entry["version"]))


def _tensor_spec(detail):
    scale, zero_point = detail["quantization"]
    return {
        "tensor_name": detail["name"],
        "shape": [int(v) for v in detail["shape"]],
        "dtype": np.dtype(detail["dtype"]).name,
        "scale": float(scale),
        "zero_point": int(zero_point),
    }


def _versions():
    versions = {"tfyolo": tfyolo.__version__}
    for package in ("tensorflow", "ai-edge-litert", "numpy", "opencv-python-headless"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


NORMALIZATION = "pixel / 255"


def describe_model(runner):
    """The manifest's description of a model's I/O and decode, derived from the interpreter alone: `make_bundle`
    writes it and `verify_bundle` derives it again to check the manifest against the model."""
    input_spec = _tensor_spec(runner.input_detail)
    input_spec.update(
        {
            "color": "RGB",
            "layout": "NCHW" if runner.channels_first else "NHWC",
            "pad_value": PAD_VALUE,
            "normalization": NORMALIZATION,
            "letterbox": "resize keeping aspect ratio so the long side is the input size "
            "(INTER_AREA down, INTER_LINEAR up), pad centered with the gray pad value",
            "quantize": "q = clip(round(x / scale + zero_point)) when dtype is integer",
        }
    )
    outputs = []
    for name, detail in runner.outputs.items():
        spec = _tensor_spec(detail)
        spec["name"] = name
        spec["dequantize"] = "x = (q - zero_point) * scale when dtype is integer"
        outputs.append(spec)
    decode = {"layout": runner.layout}
    if runner.layout == "tfyolo":
        decode.update(
            {
                "reg_max": runner.reg_max,
                "strides": [8, 16, 32],
                "anchor_offset": 0.5,
                "anchor_order": "stride 8, 16, 32; row-major within a level; points in grid units",
                "boxes": "softmax over reg_max bins per side -> expectation = distance (grid units) left, top, right, "
                "bottom (reg_max 1: the four values are the distances); box = (point - left/top, "
                "point + right/bottom) * stride, in input pixels",
                "scores": "sigmoid(class_logits)",
            }
        )
    elif runner.layout == "ultralytics_end2end":
        decode.update(
            {
                "box_units": "normalized" if runner.normalized_boxes else "pixels",
                "boxes": "output0[:, :4] = x1, y1, x2, y2 of the input, normalized (x input size) or in pixels",
                "scores": "output0[:, 4] (already sigmoid) at class output0[:, 5]; top-k already applied",
            }
        )
    else:
        decode.update(
            {
                "box_units": "normalized" if runner.normalized_boxes else "pixels",
                "boxes": "output0[:4] = cx, cy, w, h of the input, normalized (x input size) or in pixels",
                "scores": "output0[4:] (already sigmoid)",
            }
        )
    masks = _describe_masks(runner)
    if masks:
        decode["masks"] = masks
    return input_spec, outputs, decode


def _describe_masks(runner):
    """A segmenter's mask outputs and their assembly, for `decode["masks"]`; None for a detector."""
    if not runner.task.inference_outputs:
        return None
    if runner.layout == "tfyolo":
        where = {
            "coefficients": f"{MASK_COEFFICIENTS} (1, anchors, {runner.task.num_masks}), in anchor order",
            "prototypes": f"{MASK_PROTOTYPES} (1, input / 4, input / 4, {runner.task.num_masks}), NHWC",
        }
    else:
        where = {
            "coefficients": f"output0's last {runner.num_masks} rows, one column per anchor",
            "prototypes": f"output1 (1, {runner.num_masks}, input / 4, input / 4), "
            + ("NCHW" if runner.channels_first else "NHWC"),
        }
    return {
        **where,
        "prototype_layout": "NCHW" if runner.layout != "tfyolo" and runner.channels_first else "NHWC",
        "assembly": "per kept detection: logits = coefficients . prototypes at input / 4; sampled bilinearly "
        "(align_corners=False, clamped at the borders) at the original image's pixel centres mapped through the "
        "letterbox (x_input = x * scale + pad); kept inside the detection's box (x1 <= col < x2, y1 <= row < y2); "
        "mask = logits > 0 (sigmoid > 0.5)",
    }


def golden_input(image, input_spec, input_detail):
    """The tensor fed for a golden vector: `image` (decoded RGB) letterboxed with the spec's pad value, / 255,
    in the spec's layout, quantized with the interpreter's input detail."""
    size = int(input_spec["shape"][2])
    boxed, _ = letterbox(image, size, input_spec["pad_value"])
    model_input = to_model_input(boxed[None])
    if input_spec["layout"] == "NCHW":
        model_input = np.transpose(model_input, (0, 3, 1, 2))
    return quantize(model_input, input_detail)


def make_bundle(
    model_path,
    golden_images,
    evaluation=None,
    latency=None,
    nms_config=NMSConfig(confidence_threshold=0.25, iou_threshold=0.7, max_detections=300),
    npu_targets=(),
    mcu=False,
):
    """Builds the bundle of `model_path` (.tflite); returns {relative path: bytes}.

    golden_images: image paths whose preprocessed tensors and exact outputs become the golden vectors; the images
        themselves go into the bundle too, so that `verify_bundle` can derive each golden input again from the
        manifest's preprocessing.
    evaluation / latency: optional dicts (from tfyolo-eval --json / tfyolo bench) copied into the manifest.
    npu_targets: NpuTarget instances: the model compiled by Vela for each (`targets/<stem>_vela_<npu>.tflite`)
        and Vela's estimates go into the bundle. mcu: TFLite Micro runs the golden inputs (parity, arena size).
    """
    model_path = Path(model_path)
    content = model_path.read_bytes()
    runner = TFLiteRunner(model_content=content, num_threads=1)
    metadata = runner.metadata
    names = runner.names or [f"class{i}" for i in range(runner.num_classes)]
    files = {model_path.name: content, "labels.txt": ("\n".join(names) + "\n").encode()}
    input_spec, outputs, decode = describe_model(runner)

    golden, fed_inputs = [], []
    for index, image_path in enumerate(golden_images):
        image_path = Path(image_path)
        fed = golden_input(read_image_rgb(image_path), input_spec, runner.input_detail)
        fed_inputs.append(fed)
        interpreter = runner.interpreter
        interpreter.set_tensor(runner.input_detail["index"], fed)
        interpreter.invoke()
        source = f"golden/source_{index:02d}{image_path.suffix.lower()}"
        entry = {"input": f"golden/input_{index:02d}.npy", "source_image": image_path.name, "source": source}
        entry["outputs"] = {}
        files[source] = image_path.read_bytes()
        files[entry["input"]] = _npy_bytes(fed)
        for name, detail in runner.outputs.items():
            relative = f"golden/output_{index:02d}_{name}.npy"
            files[relative] = _npy_bytes(interpreter.get_tensor(detail["index"]).copy())
            entry["outputs"][name] = relative
        golden.append(entry)
    files["reference_infer.py"] = REFERENCE_SCRIPT.read_bytes()
    targets = None
    if npu_targets or mcu:
        from tfyolo.targets.target_check import check_targets

        targets, compiled = check_targets(content, model_path.stem, npu_targets, fed_inputs if mcu else None)
        for accelerator, compiled_content in compiled.items():
            relative = f"{TARGETS_FOLDER}/{model_path.stem}_vela_{accelerator}.tflite"
            files[relative] = compiled_content
            targets["npu"][accelerator]["compiled_model"] = relative

    manifest = {
        "format": "tfyolo-edge-bundle/1",
        "model": model_path.name,
        "names": names,
        "input": input_spec,
        "outputs": outputs,
        "decode": decode,
        # "nms": class-aware NMS with the settings below; "topk" (a one-to-one head): the max_detections anchors
        # with the best class score, then the max_detections best (anchor, class) pairs among them, kept above the
        # confidence threshold, no IoU suppression.
        "postprocess": runner.postprocess,
        "nms": {
            "class_aware": True,
            "multi_label": True,
            "confidence_threshold": nms_config.confidence_threshold,
            "iou_threshold": nms_config.iou_threshold,
            "max_detections": nms_config.max_detections,
            "evaluation_confidence_threshold": 0.001,
        },
        "recipe": metadata.get("recipe"),
        "calibration": metadata.get("calibration"),
        "qat": metadata.get("qat", False),
        "evaluation": evaluation,
        "latency": latency,
        "versions": _versions(),
        "tflite_op_versions": op_versions(content),
        "targets": targets,
        "golden": golden,
        "golden_tolerance": {"float_relative": FLOAT_TOLERANCE, "integer_steps": INTEGER_TOLERANCE_STEPS},
        "sha256": {name: _sha256(data) for name, data in sorted(files.items())},
    }
    manifest_bytes = (json.dumps(manifest, indent=2) + "\n").encode()
    files[MANIFEST] = manifest_bytes
    files[MANIFEST_DIGEST] = f"{_sha256(manifest_bytes)}  {MANIFEST}\n".encode()
    return files


def write_bundle(folder, files):
    """Writes `files` ({relative path: bytes}) as the folder `folder`, all at once: the bundle is built beside it
    and renamed into place, so a crash leaves the old bundle or the new one, never a mix (a bundle verifies only
    with exactly its own files). A folder that is not a bundle is never replaced."""
    import shutil
    import tempfile

    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not (folder / MANIFEST).is_file():
        raise ModelError(f"{folder}: exists and is not a bundle; choose an empty or new --out.")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.new-"))
    try:
        for relative, data in files.items():
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            (staging / relative).write_bytes(data)
        staging.chmod(0o755)
        previous = folder.with_name(f".{folder.name}.old") if folder.exists() else None
        if previous:
            shutil.rmtree(previous, ignore_errors=True)
            folder.rename(previous)
        staging.rename(folder)
        if previous:
            shutil.rmtree(previous, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


REQUIRED_KEYS = {"model": str, "sha256": dict, "golden": list, "outputs": list, "input": dict}


def verify_bundle(directory):
    """Checks every sha256, that the folder holds exactly the listed files, and replays the golden vectors;
    returns a list of problems (empty: verified)."""
    directory = Path(directory)
    problems = []
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        return [f"{manifest_path}: missing; not a tfyolo bundle."]
    manifest_bytes = manifest_path.read_bytes()
    digest_path = directory / MANIFEST_DIGEST
    recorded = digest_path.read_text(errors="replace").split() if digest_path.is_file() else []
    if not recorded or recorded[0] != _sha256(manifest_bytes):
        problems.append(f"{manifest_path}: does not match {MANIFEST_DIGEST} (the manifest or its digest was changed).")
    try:
        manifest = json.loads(manifest_bytes)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return problems + [f"{manifest_path}: not valid JSON ({error})."]
    wrong = [key for key, kind in REQUIRED_KEYS.items() if not isinstance(manifest.get(key), kind)]
    if not isinstance(manifest, dict) or wrong:
        return problems + [f"{manifest_path}: missing or malformed key(s) {wrong}; not a bundle this tool wrote."]
    outside = _names_outside(directory, manifest)
    if outside:
        return problems + [f"{manifest_path}: names {outside}, not files of this bundle; nothing outside it is read."]
    for name, expected in manifest["sha256"].items():
        path = directory / name
        if not path.is_file():
            problems.append(f"{path}: listed in the manifest but missing.")
        elif _sha256(path.read_bytes()) != expected:
            problems.append(f"{path}: sha256 mismatch (the file was changed).")
    listed = set(manifest["sha256"]) | {MANIFEST, MANIFEST_DIGEST}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if (path.is_file() or path.is_symlink()) and relative not in listed:
            problems.append(f"{path}: not part of the bundle (unexpected file).")
    if problems:
        return problems
    try:
        runner = TFLiteRunner(directory / manifest["model"], num_threads=1)
    except ModelError as error:
        return [f"{directory / manifest['model']}: cannot load ({error})."]
    try:
        problems = _consistency_problems(directory, manifest, runner)
        return (
            problems + _replay_golden(directory, manifest, runner.interpreter) + _target_problems(directory, manifest)
        )
    except (KeyError, TypeError, ValueError, OSError, IndexError) as error:
        return [f"{manifest_path}: its golden vectors cannot be replayed ({type(error).__name__}: {error})."]


def _names_outside(directory, manifest):
    """The file names in `manifest` that are not its own files: a listed name must be a relative path that stays in
    `directory` (no `..`, no absolute path, no link out), and the model and golden files must be listed names. A
    manifest naming `../../etc/hostname` is refused before any file it names is opened."""
    root = directory.resolve()
    listed = set(manifest["sha256"])

    def stays_inside(name):
        parts = PurePosixPath(name).parts
        if not name or "\\" in name or PurePosixPath(name).is_absolute() or ".." in parts:
            return False
        return (directory / name).resolve().is_relative_to(root)

    named = [manifest["model"]]
    for entry in manifest["golden"]:
        entry = entry if isinstance(entry, dict) else {}
        outputs = entry.get("outputs") if isinstance(entry.get("outputs"), dict) else {}
        named += [entry.get("input"), *([entry["source"]] if "source" in entry else []), *outputs.values()]
    outside = [name for name in listed if not stays_inside(name)]
    return outside + [name for name in dict.fromkeys(map(str, named)) if name not in listed]


def _consistency_problems(directory, manifest, runner):
    """The bundle's files checked against each other: the manifest's description of the model against the one
    derived from the model itself, its names against labels.txt and the model's own metadata, and each golden
    input against the one its stored source image gives under the manifest's preprocessing. A manifest edited with
    its digest recomputed passes the hash checks; it does not pass these."""
    problems = []
    manifest_path = directory / MANIFEST
    input_spec, outputs, decode = describe_model(runner)
    for key, derived in (("input", input_spec), ("outputs", outputs), ("decode", decode)):
        if manifest[key] != derived:
            problems.append(f"{manifest_path}: {key!r} does not describe {manifest['model']} (derived: {derived}).")
    names = manifest.get("names")
    labels = (directory / "labels.txt").read_text().splitlines() if (directory / "labels.txt").is_file() else None
    if labels != names:
        problems.append(f"{directory / 'labels.txt'}: lists {labels}, the manifest names {names}.")
    if not isinstance(names, list) or len(names) != runner.num_classes:
        problems.append(f"{manifest_path}: names {names} for a model of {runner.num_classes} classes.")
    elif runner.names and runner.names != names:
        problems.append(f"{manifest_path}: names {names}; the model's own metadata names {runner.names}.")
    for entry in manifest["golden"]:
        source = directory / entry.get("source", "")
        if not entry.get("source") or not source.is_file():
            problems.append(f"{manifest_path}: golden vector {entry['input']} has no source image in the bundle.")
            continue
        expected = golden_input(read_image_rgb(source), manifest["input"], runner.input_detail)
        stored = np.load(directory / entry["input"], allow_pickle=False)
        if stored.shape != expected.shape or stored.dtype != expected.dtype:
            problems.append(f"{directory / entry['input']}: {stored.dtype}{stored.shape}, expected {expected.shape}.")
            continue
        step = 1 if np.issubdtype(stored.dtype, np.integer) else 1e-6
        worst = float(np.abs(stored.astype(np.float64) - expected.astype(np.float64)).max())
        if worst > step:
            problems.append(
                f"{directory / entry['input']}: not what {entry['source']} gives under the manifest's preprocessing "
                f"(pad_value {manifest['input'].get('pad_value')}, {manifest['input'].get('normalization')}); "
                "the manifest's preprocessing was changed."
            )
    return problems


def _replay_golden(directory, manifest, interpreter):
    problems = []
    input_detail = interpreter.get_input_details()[0]
    by_name = {detail["name"]: detail for detail in interpreter.get_output_details()}
    specs = {output["name"]: output for output in manifest["outputs"]}
    for entry in manifest["golden"]:
        interpreter.set_tensor(input_detail["index"], np.load(directory / entry["input"], allow_pickle=False))
        interpreter.invoke()
        for name, relative in entry["outputs"].items():
            expected = np.load(directory / relative, allow_pickle=False)
            actual = interpreter.get_tensor(by_name[specs[name]["tensor_name"]]["index"])
            if np.issubdtype(expected.dtype, np.integer):
                worst = int(np.abs(actual.astype(np.int64) - expected.astype(np.int64)).max())
                if worst > INTEGER_TOLERANCE_STEPS:
                    problems.append(
                        f"{directory / relative}: output differs by {worst} quantization steps "
                        f"(tolerance {INTEGER_TOLERANCE_STEPS})."
                    )
            else:
                spread = float(expected.max() - expected.min()) or 1.0
                worst = float(np.abs(actual - expected).max()) / spread
                if worst > FLOAT_TOLERANCE:
                    problems.append(
                        f"{directory / relative}: output differs by {worst:.2e} of its range "
                        f"(tolerance {FLOAT_TOLERANCE})."
                    )
    return problems


def _target_problems(directory, manifest):
    """Each Vela-compiled model compiled again from the bundle's model with the target recorded for it (Vela is
    deterministic: the same input, version and options give the same bytes), and its recorded estimates against
    the new ones. Needs the targets extra when the bundle has NPU targets."""
    npu = (manifest.get("targets") or {}).get("npu") or {}
    if not npu:
        return []
    from tfyolo.errors import ConfigError
    from tfyolo.targets.npu_target import VELA_VERSION, NpuTarget, compile_for_npu

    problems = []
    content = (directory / manifest["model"]).read_bytes()
    for accelerator, recorded in npu.items():
        if recorded.get("vela_version") != VELA_VERSION:
            problems.append(
                f"{directory / MANIFEST}: target {accelerator} was compiled by Vela {recorded.get('vela_version')}; "
                f"this tfyolo verifies with Vela {VELA_VERSION}."
            )
            continue
        target = NpuTarget(accelerator, recorded["system_config"], recorded["memory_mode"])
        try:
            compiled, report = compile_for_npu(content, target, Path(manifest["model"]).stem)
        except ConfigError as error:
            problems.append(f"{directory / MANIFEST}: target {accelerator} cannot be verified here: {error}")
            continue
        if _sha256(compiled) != manifest["sha256"].get(recorded.get("compiled_model")):
            problems.append(
                f"{directory / recorded.get('compiled_model', '?')}: is not what Vela {VELA_VERSION} compiles from "
                f"{manifest['model']} for {accelerator}."
            )
        fresh = report.to_dict()
        changed = [key for key, value in fresh.items() if recorded.get(key) != value]
        if changed:
            problems.append(f"{directory / MANIFEST}: target {accelerator}: {changed} differ from Vela's figures.")
    return problems


def golden_inputs(model_path, image_source, count):
    """The input tensors of `count` golden vectors for the .tflite at `model_path` (the images `golden_image_paths`
    picks, preprocessed as its manifest would say): what TFLite Micro runs."""
    runner = TFLiteRunner(model_path, num_threads=1)
    input_spec, _, _ = describe_model(runner)
    images = golden_image_paths(model_path, image_source, count)
    return [golden_input(read_image_rgb(path), input_spec, runner.input_detail) for path in images]


def golden_image_paths(model_path, image_source, count):
    """The first `count` images for the golden vectors: from `image_source` (folder or data.yaml), else the val
    split of the model's dataset, else calibration_data/."""
    if image_source is None:
        metadata = find_model_metadata(model_path) or {}
        data = metadata.get("data")
        if data and Path(data).is_file():
            dataset = DetectionDataset.from_data_yaml(data, "val")
            return [sample.image_path for sample in dataset.samples[:count]]
        image_source = DEFAULT_CALIBRATION
    paths, _ = calibration_paths(image_source)
    return paths[:count]
