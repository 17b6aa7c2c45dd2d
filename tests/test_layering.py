"""Data flows one way: every module sits in a layer, and imports only from its own layer or the ones below. Models
and data at the bottom, then training and quantization, then the jobs, then the service and the CLI on top (the
benchmarks may import any library module but no CLI one)."""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. A module belongs to the first layer one of whose prefixes names it or a package above it.
LAYERS = (
    (
        "foundations",
        (
            "tfyolo.errors",
            "tfyolo.compat",
            "tfyolo.config",
            "tfyolo.io_utils",
            "tfyolo.markdown",
            "tfyolo.processes",
            "tfyolo.__init__",
        ),
    ),
    ("data and runtime", ("tfyolo.ops", "tfyolo.data", "tfyolo.metadata", "tfyolo.tflite_runtime")),
    ("models", ("tfyolo.models",)),
    (
        "readers and evaluation",
        (
            "tfyolo.losses",
            "tfyolo.importers",
            "tfyolo.evaluation",
            "tfyolo.benchmark",
            "tfyolo.plots",
            "tfyolo.targets",
        ),
    ),
    ("training", ("tfyolo.training",)),
    ("quantization-aware training", ("tfyolo.qat",)),
    ("conversion", ("tfyolo.quantization", "tfyolo.export")),
    ("jobs", ("tfyolo.jobs", "tfyolo.bundle", "tfyolo.bundle_files", "tfyolo.console")),
    ("service", ("tfyolo.service",)),
    ("command line", ("tfyolo.cli", "tfyolo.__main__")),
)


def module_name(path):
    relative = path.relative_to(ROOT).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts) if parts != ("tfyolo",) else "tfyolo.__init__"


def layer_of(name):
    for level, (_, prefixes) in enumerate(LAYERS):
        if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes):
            return level
    return None


def imported_modules(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            # `from tfyolo.x import y` may import the module tfyolo.x.y
            yield from (f"{node.module}.{alias.name}" for alias in node.names if node.module.startswith("tfyolo"))


def upward_imports(paths):
    offenders = []
    for path in paths:
        own = layer_of(module_name(path))
        for name in imported_modules(path):
            if name == "tfyolo" or not name.startswith("tfyolo."):
                continue
            target = layer_of(name)
            if target is not None and own is not None and target > own:
                offenders.append(f"{module_name(path)} ({LAYERS[own][0]}) imports {name} ({LAYERS[target][0]})")
    return offenders


def test_every_module_has_a_layer():
    unplaced = [module_name(p) for p in sorted((ROOT / "tfyolo").rglob("*.py")) if layer_of(module_name(p)) is None]
    assert unplaced == []


def test_no_module_imports_from_a_layer_above_its_own():
    assert upward_imports(sorted((ROOT / "tfyolo").rglob("*.py"))) == []


def test_the_benchmarks_import_no_cli_module():
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / "benchmarks").rglob("*.py"))
        for name in imported_modules(path)
        if name.startswith("tfyolo.cli")
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "source, offender",
    [
        ("def f():\n    from tfyolo.qat.qat_model import build_qat_model\n", "imports tfyolo.qat.qat_model"),
        ("from tfyolo.quantization import converter\n", "imports tfyolo.quantization.converter"),
        ("import tfyolo.cli.main\n", "imports tfyolo.cli.main"),
    ],
)
def test_the_layering_test_sees_an_offender(tmp_path, monkeypatch, source, offender):
    """A models module that imported QAT, conversion or the CLI would be named (the oracle: a file placed among the
    models)."""
    folder = tmp_path / "tfyolo" / "models"
    folder.mkdir(parents=True)
    (folder / "bad.py").write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = upward_imports([folder / "bad.py"])
    assert len(found) >= 1 and any(offender in line for line in found), found
