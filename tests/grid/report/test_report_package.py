"""The report package's shape: every registered format writes its files, the CLI offers exactly the
registered formats, and no module of grid.report imports one that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

from test_report import hand_rows, write

import grid.report
from grid import report as R
from grid.cli.report import report as report_cmd
from grid.report import sensitivity, tables
from grid.report.render import WRITERS, write_report
from hcld.metrics import METRICS

PACKAGE_DIR = Path(grid.report.__file__).parent
ROOT = PACKAGE_DIR.parent.parent


def test_every_registered_format_writes_its_files(tmp_path):
    assert {"md", "latex", "csv", "html"} <= set(WRITERS)  # discovery dropped none of the formats we ship
    rep = R.build_report(write(tmp_path, hand_rows()), "g")
    for fmt in WRITERS:
        out = tmp_path / fmt
        files = write_report(rep, out, [fmt])
        assert files, fmt
        assert sorted(p.name for p in out.iterdir()) == sorted(f.name for f in files), fmt
        assert all(f.is_file() and f.stat().st_size > 0 for f in files), fmt


def test_each_render_module_is_one_registered_format():
    modules = {p.stem for p in (PACKAGE_DIR / "render").glob("*.py") if not p.name.startswith("_")}
    assert sorted(w.__module__.rsplit(".", 1)[1] for w in WRITERS.values()) == sorted(modules)


def test_cli_format_choices_are_the_registered_formats():
    option = next(p for p in report_cmd.params if p.name == "formats")
    assert list(option.type.choices) == list(WRITERS)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _ancestors(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _imported(node: ast.AST, modules: set[str], importer: str) -> set[str]:
    """The grid.report modules an import statement in `importer` needs run to the end: those it
    names (`from grid.report import Report` names the package itself), and the packages above them
    other than the importer's own (those are being initialised already when it runs)."""
    if isinstance(node, ast.Import):
        named = {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        named = {f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                 for alias in node.names}
    else:
        return set()
    implied = {a for name in named for a in _ancestors(name)} - _ancestors(importer)
    return (named | implied) & modules - {importer}


def test_no_import_circle_and_no_import_deferred_to_dodge_one():
    paths = sorted(PACKAGE_DIR.rglob("*.py"))
    modules = {_module_name(p) for p in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        name = _module_name(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[name] = {m for node in tree.body for m in _imported(node, modules, name)}
        deferred = {m for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                    for node in ast.walk(fn) for m in _imported(node, modules, name)}
        assert not deferred, f"{name} imports {sorted(deferred)} inside a function"

    assert "grid.report" in graph["grid.report.render.html"]  # the check sees the imports it judges

    def visit(name: str, path: list[str]) -> None:
        for dep in sorted(graph[name]):
            assert dep not in path, "import circle: " + " -> ".join([*path[path.index(dep):], dep])
            visit(dep, [*path, dep])

    for name in sorted(graph):
        visit(name, [name])


def test_the_metrics_the_report_names_are_hcld_metrics():
    assert tables.SIGNIFICANCE_METRICS == ("emo_wa", "emo_ua", "emo_f1")
    assert {sensitivity.GAIN, sensitivity.PROBE} <= set(METRICS)
