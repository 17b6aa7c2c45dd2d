"""Ethos-U through Vela and TFLite Micro, on the tiny trained model's int8 artifacts (the tools are the `targets`
extra, installed with the test extra by `make install`)."""

import json
from collections import Counter

import numpy as np
import pytest
from click.testing import CliRunner

from tfyolo.errors import ConfigError

vela = pytest.importorskip("ethosu.vela", reason="the targets extra (ethos-u-vela) is not installed")
pytest.importorskip("tflite_micro", reason="the targets extra (tflite-micro) is not installed")

from tfyolo.targets.mcu_target import ARENA_ALIGNMENT, check_on_mcu, smallest_arena  # noqa: E402
from tfyolo.targets.npu_target import NpuTarget, compile_for_npu, parse_report  # noqa: E402


def _operator_codes(model_content):
    """(builtin operator names, custom codes) of every operator in a .tflite, read from the flatbuffer itself."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model_content, 0))
    builtins, customs = [], []
    for op in model.subgraphs[0].operators:
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        (customs.append(code.customCode.decode()) if code.customCode else builtins.append(names[builtin]))
    return builtins, customs


@pytest.fixture(scope="module")
def tiny_int8_float_io(tiny_float_run, tiny_synthetic):
    from tfyolo.data.calibration_images import load_calibration_images
    from tfyolo.models.model_io import load_keras_model
    from tfyolo.quantization.converter import convert
    from tfyolo.quantization.recipes_dir import resolve_recipe

    images, _ = load_calibration_images(tiny_synthetic, 64, 2)
    return convert(load_keras_model(tiny_float_run), resolve_recipe("int8"), images)


@pytest.fixture(scope="module")
def inputs(tiny_int8, tiny_synthetic):
    from tfyolo.bundle import golden_inputs

    return golden_inputs(tiny_int8, str(tiny_synthetic), 2)


def test_int8_with_int8_io_runs_every_operator_on_the_npu(tiny_int8):
    compiled, report = compile_for_npu(tiny_int8.read_bytes(), NpuTarget("ethos-u55-128"), "tiny")
    assert report.cpu_operators == {} and report.npu_share == 1.0 and report.all_on_npu
    # The oracle is the compiled file itself: Vela replaces what the NPU runs by one `ethos-u` custom operator.
    builtins, customs = _operator_codes(compiled)
    assert builtins == [] and customs == ["ethos-u"]
    assert report.system_config == "Ethos_U55_High_End_Embedded" and report.memory_mode == "Shared_Sram"
    assert report.clock_mhz == 500 and report.inference_ms > 0 and report.sram_kib > 0
    # MACs: Vela counts the convolutions' multiply-accumulates; the model's own arithmetic bounds them from below.
    assert report.macs > 0 and report.cycles == pytest.approx(report.inference_ms * 1e-3 * 500e6, rel=1e-6)


def test_float_io_leaves_its_boundary_on_the_cpu_with_vela_s_reasons(tiny_int8_float_io):
    from tfyolo.tflite_runtime import read_graph

    # The oracle: the QUANTIZE / DEQUANTIZE operators with a float tensor, read from the graph (a QUANTIZE from
    # int8 to int8 is a requantization, which the NPU runs).
    _, graph_ops, tensors = read_graph(tiny_int8_float_io)
    boundary = Counter(
        op["op_name"]
        for op in graph_ops
        if any(tensors[index]["dtype"] == np.float32 for index in list(op["inputs"]) + list(op["outputs"]))
    )
    assert set(boundary) == {"QUANTIZE", "DEQUANTIZE"}
    compiled, report = compile_for_npu(tiny_int8_float_io, NpuTarget("ethos-u65-256"), "tiny_float_io")
    assert report.cpu_operators == dict(boundary)
    assert {cpu["operator"] for cpu in report.cpu_reasons} == {"QUANTIZE", "DEQUANTIZE"}
    assert all(cpu["reason"] and cpu["reason"] != "Vela gave no reason" for cpu in report.cpu_reasons)
    builtins, customs = _operator_codes(compiled)
    assert Counter(builtins) == boundary
    assert customs == ["ethos-u"]
    assert 0 < report.npu_share < 1


def test_vela_s_text_is_read_line_by_line():
    summary = {
        "accelerator_configuration": "Ethos_U55_64",
        "system_config": "Ethos_U55_Deep_Embedded",
        "memory_mode": "Shared_Sram",
        "core_clock": "200000000.0",
        "inference_time": "0.25",
        "cycles_total": "50000000",
        "nn_macs": "1000",
        "sram_memory_used": "12.5",
        "off_chip_flash_memory_used": "100.0",
        "on_chip_flash_memory_used": "0.0",
        "dram_memory_used": "0.0",
    }
    stdout = (
        "Warning (supported operators) operator: DEQUANTIZE, ofm: 'out_dequant'\nReason: Unsupported opType\n\n"
        "Warning (supported operators) operator: TOPK_V2, ofm: 'top k;1'\nReason: Unsupported opType\n"
        "Second line of the reason\n\nNetwork summary for m\n"
        "CPU operators = 2 (25.0%)\n   CPU: Passthrough = out_dequant (outputs [1, 5])\n"
        "   CPU: Passthrough = top k;1 (outputs [1, 3])\n"
        "NPU operators = 6 (75.0%)\n"
        + "   NPU: Conv2D = c (outputs [1, 8, 8, 4])\n" * 5
        + "   NPU: LUT = l (outputs [1])\n"
    )
    report = parse_report(summary, stdout)
    assert report.cpu_operators == {"DEQUANTIZE": 1, "TOPK_V2": 1}
    assert report.npu_operators == {"Conv2D": 5, "LUT": 1} and report.npu_share == 0.75
    assert report.cpu_reasons[1] == {
        "operator": "TOPK_V2",
        "output": "top k;1",
        "reason": "Unsupported opType Second line of the reason",
    }
    assert report.inference_ms == 250 and report.clock_mhz == 200 and report.flash_kib == 100


def test_a_float_model_is_refused_naming_the_recipes_that_fix_it(tiny_float_run):
    from tfyolo.models.model_io import load_keras_model
    from tfyolo.quantization.converter import convert
    from tfyolo.quantization.recipes_dir import resolve_recipe

    fp32 = convert(load_keras_model(tiny_float_run), resolve_recipe("fp32"))
    with pytest.raises(ConfigError, match=r"computes in float .*int8_int8io.*int16x8"):
        compile_for_npu(fp32, NpuTarget("ethos-u55-128"), "tiny_fp32")


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"accelerator": "ethos-u99"}, "accelerator must be one of"),
        ({"accelerator": "ethos-u55-128", "system_config": "../x.ini"}, "system_config must name a section"),
        ({"accelerator": "ethos-u55-128", "optimise": "Speed"}, "optimise must be"),
    ],
)
def test_targets_are_checked_when_made(fields, message):
    with pytest.raises(ConfigError, match=message):
        NpuTarget(**fields)


def test_an_unknown_system_config_is_one_line_from_vela(tiny_int8):
    from tfyolo.errors import ModelError

    with pytest.raises(ModelError, match=r"Vela 5\.2\.0 refused it for ethos-u55-128") as raised:
        compile_for_npu(tiny_int8.read_bytes(), NpuTarget("ethos-u55-128", system_config="No_Such_System"), "t")
    # Vela's reason, naming what it could not find; never a warning it printed on the way.
    assert "No_Such_System" in str(raised.value) and "warning" not in str(raised.value).lower(), raised.value


def test_vela_s_reason_is_its_error_line_not_its_last_line():
    from tfyolo.targets.npu_target import vela_refusal

    printed = "Warning: Unsupported TensorFlow Lite semantics\nError: Invalid memory mode  X\n\nWarning: see above\n"
    assert vela_refusal(printed) == "Error: Invalid memory mode X"
    assert vela_refusal("Warning: only a warning\n") == "Warning: only a warning"
    assert vela_refusal("") == "it printed nothing"


def test_a_model_named_like_a_glob_pattern_finds_its_compiled_model(tiny_int8):
    """Issue 34's trial: an artifact named `m[1].tflite` broke Vela's output lookup (a glob character class)."""
    compiled, report = compile_for_npu(tiny_int8.read_bytes(), NpuTarget("ethos-u55-128"), "m[1]")
    assert compiled[4:8] == b"TFL3" and report.all_on_npu


def test_tflite_micro_computes_what_litert_s_reference_kernels_compute(tiny_int8, inputs):
    report = check_on_mcu(tiny_int8.read_bytes(), inputs)
    assert report.parity and report.missing_operators == [] and report.inputs_compared == 2
    assert set(report.steps_vs_reference) == {"box_distribution", "class_logits"}
    assert all(steps == 0 for steps in report.steps_vs_reference.values())
    assert report.first_divergence is None and report.offset_buffers == 0


def test_ai_edge_quantizer_artifacts_keep_their_buffers_inside_and_agree_in_tflite_micro(
    tiny_float_run, tiny_synthetic, inputs
):
    """ai-edge-quantizer writes its constant buffers by offset past the flatbuffer, which TFLite Micro reads wrong
    (its artifacts diverged by 150-244 steps in `make bench-targets`); tfyolo writes them back inside, so its
    ai-edge-quantizer int8 agrees with LiteRT's reference kernels to 0 steps as the TFLiteConverter one does."""
    from tfyolo.data.calibration_images import load_calibration_images
    from tfyolo.quantization.isolated import convert_isolated
    from tfyolo.quantization.recipe import Recipe
    from tfyolo.targets.mcu_target import offset_buffers

    images, _ = load_calibration_images(tiny_synthetic, 64, 8)
    recipe = Recipe(name="int8_aeq_int8io", mode="int8", io_type="int8", quantizer="ai_edge_quantizer")
    content = convert_isolated(tiny_float_run, recipe, images)
    assert offset_buffers(content) == 0
    report = check_on_mcu(content, inputs)
    assert report.parity and all(steps == 0 for steps in report.steps_vs_reference.values())


def test_the_arena_is_the_smallest_that_allocates(tiny_int8):
    from tflite_micro.python.tflite_micro import runtime

    content = tiny_int8.read_bytes()
    arena = smallest_arena(content)
    assert arena % ARENA_ALIGNMENT == 0
    runtime.Interpreter.from_bytes(content, arena_size=arena)
    with pytest.raises(RuntimeError):
        runtime.Interpreter.from_bytes(content, arena_size=arena - ARENA_ALIGNMENT)


def test_an_operator_tflite_micro_lacks_is_named(tmp_path):
    from tfyolo.compat import tf

    @tf.function(input_signature=[tf.TensorSpec([1, 16], tf.float32)])
    def top_scores(scores):
        return tf.math.top_k(scores, 4).values

    content = tf.lite.TFLiteConverter.from_concrete_functions(
        [top_scores.get_concrete_function()], top_scores
    ).convert()
    report = check_on_mcu(content, [np.zeros((1, 16), np.float32)])
    assert report.missing_operators == ["TOPK_V2"] and not report.parity


def test_target_command_writes_the_report_and_the_compiled_model(tiny_int8, tiny_synthetic, tmp_path):
    from tfyolo.cli.main import cli

    result = CliRunner().invoke(
        cli,
        ["target", str(tiny_int8), "--npu", "ethos-u55-128", "--mcu", "--images", str(tiny_synthetic)]
        + ["--golden", "1", "--out", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "tiny_int8_int8io_targets.json").read_text())
    assert report["npu"]["ethos-u55-128"]["npu_share"] == 1.0 and report["mcu"]["parity"]
    compiled = tmp_path / report["npu"]["ethos-u55-128"]["compiled_model"]
    assert compiled.name == "tiny_int8_int8io_vela_ethos-u55-128.tflite"
    assert _operator_codes(compiled.read_bytes())[1] == ["ethos-u"]
    assert "| ethos-u55-128 |" in result.output and "TFLite Micro: parity on 1 input(s)" in result.output


def test_target_command_without_a_target_is_a_usage_error(tiny_int8):
    from tfyolo.cli.main import cli

    result = CliRunner().invoke(cli, ["target", str(tiny_int8)])
    assert result.exit_code == 2 and "--npu" in result.output


def test_a_file_litert_cannot_read_gets_one_line_from_the_npu_check(tmp_path):
    """A .tflite whose header says TFL3 but whose flatbuffer is not one: LiteRT's child check ends normally (it
    raised, it did not crash), and the NPU check names the file and why, not an "unexpected ValueError"."""
    from tfyolo.cli.main import cli

    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00\x00\x00\x00TFL3" + bytes(range(256)) * 8)
    result = CliRunner().invoke(cli, ["target", str(bad), "--npu", "ethos-u55-128"])
    assert result.exit_code == 1, result.output
    assert "bad: LiteRT cannot read it as a TFLite model" in result.output and "unexpected" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_bundle_carries_its_targets_and_verify_compiles_them_again(tiny_int8, tiny_synthetic, tmp_path):
    import hashlib

    from tfyolo.bundle import MANIFEST, MANIFEST_DIGEST, make_bundle, verify_bundle, write_bundle
    from tfyolo.data.detection_dataset import DetectionDataset

    images = [sample.image_path for sample in DetectionDataset.from_data_yaml(tiny_synthetic, "val").samples[:1]]
    files = make_bundle(tiny_int8, images, npu_targets=(NpuTarget("ethos-u55-64"),), mcu=True)
    manifest = json.loads(files[MANIFEST])
    npu = manifest["targets"]["npu"]["ethos-u55-64"]
    assert npu["compiled_model"] == "targets/tiny_int8_int8io_vela_ethos-u55-64.tflite"
    assert npu["compiled_model"] in manifest["sha256"] and manifest["targets"]["mcu"]["parity"]
    bundle = tmp_path / "bundle"
    write_bundle(bundle, files)
    assert verify_bundle(bundle) == []

    # A compiled model swapped for another (with every digest recomputed) is caught by compiling again.
    other, _ = compile_for_npu(tiny_int8.read_bytes(), NpuTarget("ethos-u55-256"), "tiny_int8_int8io")
    (bundle / npu["compiled_model"]).write_bytes(other)
    manifest["sha256"][npu["compiled_model"]] = hashlib.sha256(other).hexdigest()
    manifest_bytes = (json.dumps(manifest, indent=2) + "\n").encode()
    (bundle / MANIFEST).write_bytes(manifest_bytes)
    (bundle / MANIFEST_DIGEST).write_text(f"{hashlib.sha256(manifest_bytes).hexdigest()}  {MANIFEST}\n")
    problems = verify_bundle(bundle)
    assert len(problems) == 1 and "is not what Vela 5.2.0 compiles" in problems[0]
