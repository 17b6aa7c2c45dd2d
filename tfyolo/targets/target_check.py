"""One artifact against the targets a device team names: each Ethos-U configuration through Vela, and TFLite Micro.
The command line, the bundle, `--auto --target` and the benchmark all call this; it returns data and bytes, never
writes."""

from tfyolo.errors import ModelError
from tfyolo.markdown import markdown_table
from tfyolo.targets.mcu_target import check_on_mcu
from tfyolo.targets.npu_target import compile_for_npu

# Estimates, not measurements: what every report says under its figures.
ESTIMATE_NOTE = (
    "Ethos-U figures are Vela's performance-model estimates for the named system config and memory mode (clock, "
    "bus bandwidths, where weights and feature maps live), not measurements on silicon: they leave out the host "
    "CPU's share (operators Vela places on the CPU, and the time to hand over), caches and contention."
)


def check_targets(model_content, model_name, npu_targets=(), mcu_inputs=None):
    """Returns (report dict, {accelerator: Vela-compiled .tflite bytes}).

    npu_targets: NpuTarget instances. mcu_inputs: input tensors for the TFLite Micro run, or None to skip it."""
    report = {"model": model_name, "npu": {}, "mcu": None, "note": ESTIMATE_NOTE}
    compiled = {}
    for target in npu_targets:
        compiled[target.accelerator], npu = compile_for_npu(model_content, target, model_name)
        report["npu"][target.accelerator] = npu.to_dict()
    if mcu_inputs is not None:
        try:
            report["mcu"] = check_on_mcu(model_content, mcu_inputs).to_dict()
        except ModelError as error:  # TFLite Micro's refusals do not know the file's name
            raise ModelError(f"{model_name}: {error}") from None
        except (ValueError, RuntimeError, IndexError) as error:  # LiteRT's or TFLite Micro's refusal of a bad graph
            first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
            raise ModelError(f"{model_name}: the TFLite Micro check cannot run it ({first}).") from None
    return report, compiled


def npu_rows(report):
    return [
        {
            "target": accelerator,
            "system": f"{npu['system_config']} / {npu['memory_mode']}",
            "ms": npu["inference_ms"],
            "mhz": npu["clock_mhz"],
            "npu_share": 100 * npu["npu_share"],
            "cpu_ops": ", ".join(f"{op} x{count}" for op, count in npu["cpu_operators"].items()) or "none",
            "sram": npu["sram_kib"],
            "flash": npu["flash_kib"] + npu["dram_kib"],
            "gmacs": npu["macs"] / 1e9,
        }
        for accelerator, npu in report["npu"].items()
    ]


NPU_COLUMNS = [
    ("target", "target", None),
    ("system", "system config / memory mode", None),
    ("ms", "est. ms", "{:.2f}"),
    ("mhz", "clock MHz", "{:.0f}"),
    ("npu_share", "ops on NPU %", "{:.1f}"),
    ("cpu_ops", "CPU ops", None),
    ("sram", "SRAM KiB", "{:.0f}"),
    ("flash", "flash+DRAM KiB", "{:.0f}"),
    ("gmacs", "GMACs", "{:.3f}"),
]


def mcu_line(mcu):
    if mcu["missing_operators"]:
        return f"TFLite Micro: does not load, no kernel for {', '.join(mcu['missing_operators'])}."
    reference = ", ".join(f"{name} {steps}" for name, steps in mcu["steps_vs_reference"].items())
    xnnpack = ", ".join(f"{name} {steps}" for name, steps in mcu["steps_vs_xnnpack"].items())
    verdict = "parity" if mcu["parity"] else f"NO parity (bound {mcu['bound_steps']} steps)"
    line = (
        f"TFLite Micro: {verdict} on {mcu['inputs_compared']} input(s); largest difference in output steps vs "
        f"LiteRT's reference kernels: {reference}; vs XNNPACK: {xnnpack}; arena {mcu['arena_bytes']:,} bytes; "
        f"{mcu['seconds_per_call']:.1f} s per call on this CPU."
    )
    divergence = mcu.get("first_divergence")
    if divergence:
        line += (
            f" First divergence: operator {divergence['index']} ({divergence['operator']}), {divergence['steps']} "
            "steps."
        )
        if divergence["inputs_read_differently"]:
            line += f" TFLite Micro reads its input(s) {', '.join(divergence['inputs_read_differently'])} differently"
            line += (
                f" (the file keeps {mcu['offset_buffers']} buffers by offset outside its flatbuffer)."
                if mcu["offset_buffers"]
                else "."
            )
    return line


def targets_markdown(report):
    lines = [f"# {report['model']} on its targets", ""]
    if report["npu"]:
        lines += [markdown_table(npu_rows(report), NPU_COLUMNS), ""]
        for accelerator, npu in report["npu"].items():
            for cpu in npu["cpu_reasons"]:
                lines.append(f"- {accelerator}: {cpu['operator']} on the CPU: {cpu['reason']}")
        lines += ["", ESTIMATE_NOTE, ""]
    if report["mcu"] is not None:
        lines += [mcu_line(report["mcu"]), ""]
    return "\n".join(lines)
