"""Arm Ethos-U NPUs through Vela, Arm's compiler for them: where each operator runs (NPU or CPU, and Vela's reason
for every CPU one), SRAM and flash use, MACs, and Vela's estimate of cycles and inference time.

Vela's figures come from its performance model of the accelerator and the memory system it is told about (the
system config and memory mode of its `vela.ini`); they are estimates, not measurements on silicon. Vela runs as
a child process (`python -m ethosu.vela`), so its prints, exits and memory stay out of the caller's process, and
it is pinned (`VELA_VERSION`) because the summary it writes is read here line by line.
"""

import csv
import re
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from tfyolo.errors import ConfigError, ModelError
from tfyolo.processes import death_with_this_process

VELA_VERSION = "5.2.0"
# Vela 5.2's --accelerator-config choices: the NPU, then its MACs per cycle.
ACCELERATORS = (
    "ethos-u55-32",
    "ethos-u55-64",
    "ethos-u55-128",
    "ethos-u55-256",
    "ethos-u65-256",
    "ethos-u65-512",
    "ethos-u85-128",
    "ethos-u85-256",
    "ethos-u85-512",
    "ethos-u85-1024",
    "ethos-u85-2048",
)
INSTALL_HINT = "install the target tools with `pip install .[targets]` (ethos-u-vela and tflite-micro, pinned)"
# Feature-map types the Ethos-U takes (Vela's supported-operator rules): a float tensor keeps its op on the CPU.
NPU_DATA_TYPES = ("int8", "uint8", "int16")

# Vela's stdout, with --show-cpu-operations: one line per operator under its placement.
_PLACEMENT_LINE = re.compile(r"^\s+(CPU|NPU): (\S+) = (.*) \(outputs \[")
# Each operator Vela keeps off the NPU is preceded by a warning naming its TFLite type, its output and why.
_CPU_WARNING = re.compile(
    r"Warning \(supported operators\) operator: (\S+), ofm: '(.*)'\nReason: (.*(?:\n(?!\n|Warning|Network).*)*)"
)
# Vela's own totals ("CPU operators = 2 (0.7%)"): the share of operators it placed on the NPU.
_PLACEMENT_TOTAL = re.compile(r"^(CPU|NPU) operators = (\d+) ", re.MULTILINE)


@dataclass(frozen=True)
class NpuTarget:
    """One Ethos-U configuration to compile for.

    Args:
        accelerator: str. One of `ACCELERATORS`, e.g. "ethos-u55-128".
        system_config: str or None. A `[System_Config.*]` of Vela's `vela.ini` (clocks, bus bandwidths); None takes
            Vela's default for the accelerator (named in the report).
        memory_mode: str or None. A `[Memory_Mode.*]` (where weights and feature maps live); None: Vela's default.
        optimise: str. Vela's "Performance" (its default) or "Size".
    """

    accelerator: str
    system_config: Optional[str] = None
    memory_mode: Optional[str] = None
    optimise: str = "Performance"

    def __post_init__(self):
        if self.accelerator not in ACCELERATORS:
            raise ConfigError(
                f"NPU target: accelerator must be one of {', '.join(ACCELERATORS)}, received {self.accelerator!r}."
            )
        if self.optimise not in ("Performance", "Size"):
            raise ConfigError(f"NPU target: optimise must be 'Performance' or 'Size', received {self.optimise!r}.")
        for field, value in (("system_config", self.system_config), ("memory_mode", self.memory_mode)):
            if value is not None and not re.fullmatch(r"[A-Za-z0-9_]+", value):
                raise ConfigError(
                    f"NPU target: {field} must name a section of Vela's vela.ini (letters, digits, _), "
                    f"received {value!r}."
                )

    def vela_arguments(self):
        arguments = ["--accelerator-config", self.accelerator, "--optimise", self.optimise]
        if self.system_config:
            arguments += ["--system-config", self.system_config]
        if self.memory_mode:
            arguments += ["--memory-mode", self.memory_mode]
        return arguments


@dataclass(frozen=True)
class NpuReport:
    """What Vela says of one model on one target. Times in milliseconds, memory in KiB (Vela's units)."""

    accelerator: str
    system_config: str
    memory_mode: str
    clock_mhz: float
    inference_ms: float
    cycles: int
    macs: int
    sram_kib: float
    flash_kib: float
    dram_kib: float
    npu_operators: dict
    cpu_operators: dict
    cpu_reasons: list
    npu_share: float
    vela_version: str = VELA_VERSION

    @property
    def all_on_npu(self):
        return not self.cpu_operators

    def to_dict(self):
        return asdict(self)


def require_vela():
    try:
        import ethosu.vela  # noqa: F401
    except ImportError:
        raise ConfigError(f"Ethos-U targets need Vela: {INSTALL_HINT}.") from None


def compile_for_npu(model_content, target, model_name="model"):
    """Compiles a .tflite for `target` with Vela. Returns (the Vela-compiled .tflite as bytes, NpuReport).

    Refuses, in one line, a model whose compute Vela would leave on the CPU for its data type (a float model):
    the NPU runs integer feature maps only."""
    require_vela()
    _refuse_float_compute(model_content, model_name)
    with tempfile.TemporaryDirectory(prefix="tfyolo_vela_") as folder:
        # Vela names what it writes after its input file: a fixed name, so a model named `m[1]` (a glob pattern)
        # or `a b` finds its outputs; `model_name` is for messages only.
        source = Path(folder) / "model.tflite"
        source.write_bytes(model_content)
        out = Path(folder) / "out"
        command = [sys.executable, "-m", "ethosu.vela", *target.vela_arguments(), "--show-cpu-operations"]
        command += ["--output-dir", str(out), str(source)]
        # Vela dies with the process that started it (a job's worker killed with SIGKILL leaves no Vela behind).
        finished = subprocess.run(command, capture_output=True, text=True, preexec_fn=death_with_this_process())
        if finished.returncode != 0:
            reason = vela_refusal(finished.stderr + "\n" + finished.stdout)
            raise ModelError(f"{model_name}: Vela {VELA_VERSION} refused it for {target.accelerator}: {reason}")
        summaries = list(out.glob("model_summary_*.csv"))
        compiled = out / "model_vela.tflite"
        if len(summaries) != 1 or not compiled.is_file():
            raise ModelError(f"{model_name}: Vela wrote no summary or no compiled model in {out}.")
        with open(summaries[0], newline="") as handle:
            summary = next(csv.DictReader(handle))
        return compiled.read_bytes(), parse_report(summary, finished.stdout)


def vela_refusal(output):
    """Vela's reason for a failed compile, from what it printed: its error line (Vela prints "Error: ..." and, on an
    uncaught exception, the exception last), never a warning it printed on the way."""
    lines = [" ".join(line.split()) for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() and not line.lower().startswith("warning")]
    reasons = errors or [line for line in lines if not line.lower().startswith(("warning", "info"))] or lines
    return (reasons[-1] if reasons else "it printed nothing")[:500]


def parse_report(summary, stdout):
    """NpuReport from Vela's summary CSV row and its stdout (operator placement and the reasons for CPU ones)."""
    placement = {"CPU": Counter(), "NPU": Counter()}
    cpu_outputs = []
    for line in stdout.splitlines():
        match = _PLACEMENT_LINE.match(line)
        if match:
            placement[match[1]][match[2]] += 1
            if match[1] == "CPU":
                cpu_outputs.append(match[3])
    reasons = {output: (op_type, " ".join(reason.split())) for op_type, output, reason in _CPU_WARNING.findall(stdout)}
    cpu_reasons = []
    cpu_by_type = Counter()
    for output in cpu_outputs:
        op_type, reason = reasons.get(output, ("?", "Vela gave no reason"))
        cpu_by_type[op_type] += 1
        cpu_reasons.append({"operator": op_type, "output": output, "reason": reason})
    totals = {kind: int(count) for kind, count in _PLACEMENT_TOTAL.findall(stdout)}
    total = totals.get("CPU", 0) + totals.get("NPU", 0)
    return NpuReport(
        accelerator=summary["accelerator_configuration"],
        system_config=summary["system_config"],
        memory_mode=summary["memory_mode"],
        clock_mhz=float(summary["core_clock"]) / 1e6,
        inference_ms=1000 * float(summary["inference_time"]),
        cycles=int(float(summary["cycles_total"])),
        macs=int(float(summary["nn_macs"])),
        sram_kib=float(summary["sram_memory_used"]),
        flash_kib=float(summary["off_chip_flash_memory_used"]) + float(summary["on_chip_flash_memory_used"]),
        dram_kib=float(summary["dram_memory_used"]),
        npu_operators=dict(sorted(placement["NPU"].items())),
        cpu_operators=dict(sorted(cpu_by_type.items())),
        cpu_reasons=cpu_reasons,
        npu_share=totals.get("NPU", 0) / total if total else 0.0,
    )


def _refuse_float_compute(model_content, model_name):
    from tfyolo.tflite_runtime import inspect_tflite

    try:
        inspection = inspect_tflite(model_content)
    except (ValueError, RuntimeError) as error:  # LiteRT's refusal of a file that is no model it can read
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise ModelError(f"{model_name}: LiteRT cannot read it as a TFLite model ({first}).") from None
    if inspection["float_compute_ops"]:
        ops = sorted(set(inspection["float_compute_ops"]))
        raise ConfigError(
            f"{model_name}: computes in float ({', '.join(ops)}); an Ethos-U runs integer feature maps only "
            f"({'/'.join(NPU_DATA_TYPES)}), so Vela would leave it all on the CPU. Convert it with an integer "
            "recipe first: `--recipe int8_int8io` (int8, no float at its input and outputs) or `--recipe int16x8`."
        )
