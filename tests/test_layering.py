"""Data flows one way: the CLI, the benchmarks and the service call the library; the library never imports the
CLI, and the benchmarks import no CLI module (issue: the conversion service, "library first")."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


@pytest.mark.parametrize(
    "folder, forbidden",
    [
        ("tfyolo", "tfyolo.cli"),
        ("benchmarks", "tfyolo.cli"),
        ("tfyolo/jobs", "tfyolo.service"),
    ],
)
def test_no_module_reaches_back_up(folder, forbidden):
    offenders = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        if folder == "tfyolo" and path.relative_to(ROOT / "tfyolo").parts[0] in ("cli", "__main__.py"):
            continue
        offenders += [
            f"{path.relative_to(ROOT)} imports {name}"
            for name in imported_modules(path)
            if name == forbidden or name.startswith(forbidden + ".")
        ]
    assert offenders == []


def test_the_layering_test_sees_an_offender(tmp_path):
    sample = tmp_path / "bad.py"
    sample.write_text("def f():\n    from tfyolo.cli.convert import convert_command\n")
    assert list(imported_modules(sample)) == ["tfyolo.cli.convert"]
