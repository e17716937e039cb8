"""The package's layers and `dvc.yaml`'s code dependencies, read from the code's own imports.

Each stage's `deps` must list exactly the modules its script runs for its outputs, directly or
through other modules of the package, and nothing of `tracking/`: one missing means an edit to
it does not re-run the stage; one too many means an edit re-runs a stage it cannot change (an
edit to the tracking code changes no output; `make run` re-logs a configuration the store has
no record of). The layers import only downward (data -> modeling -> evaluation -> reporting ->
pipeline), tracking only from the stages and commands. Each stage's params in dvc.yaml are the
keys its work module declares (`PARAMS`), so the two cannot drift apart.
"""

import ast
import importlib
from pathlib import Path

import pytest

from lstm_vs_rnn.params import parse_yaml
from tests.conftest import REPO_ROOT

PACKAGE = "lstm_vs_rnn"
SRC = REPO_ROOT / "src"
# Each folder of the package, with the folders it may import from (the top-level modules,
# `params`, `paths`, `files`, `errors`, `cli` and the kernel pins, may be imported by all).
MAY_IMPORT = {
    "data": set(),
    "modeling": {"data"},
    "evaluation": {"data", "modeling"},
    "reporting": {"data", "modeling", "evaluation"},
    "pipeline": {"data", "modeling", "evaluation", "reporting"},
    "tracking": set(),
    "commands": {"data", "modeling", "evaluation", "reporting", "pipeline", "tracking"},
}
# The stages' tracking: never a stage's dependency, and not followed further.
TRACKING = f"{PACKAGE}.tracking"


def module_file(module: str) -> Path:
    """The file of a dotted module name of the package (a package's __init__.py)."""
    path = SRC.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def type_checking_only(tree: ast.Module) -> set[ast.AST]:
    """The nodes under `if TYPE_CHECKING:`: imports for annotations, never run."""
    return {
        inner
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
        for statement in node.body
        for inner in ast.walk(statement)
    }


def imported_modules(path: Path) -> set[str]:
    """The package's modules a file imports (at any depth of the file: lazy imports count, but
    not those for type annotations only), and the packages that contain them (importing a module
    runs its package's __init__.py)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = type_checking_only(tree)
    for node in ast.walk(tree):
        if node in skipped:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
            names += [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name.split(".")[0] != PACKAGE:
                continue
            while name.count(".") and not module_file(name).exists():
                name = name.rsplit(".", 1)[0]
            parts = name.split(".")
            found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return found


def import_closure(path: Path) -> set[Path]:
    """Every module of the package that running `path` can load for its work: not the tracking
    modules nor what only they import, and not the packages' __init__.py files, which hold only
    a docstring (see the test below)."""
    seen: set[str] = set()
    todo = list(imported_modules(path))
    while todo:
        module = todo.pop()
        if module not in seen and not module.startswith(TRACKING):
            seen.add(module)
            todo.extend(imported_modules(module_file(module)) - seen)
    files = {module_file(module) for module in seen}
    return {path for path in files if path.name != "__init__.py"}


def stage_code_deps() -> dict[str, tuple[Path, set[str]]]:
    """Per stage of dvc.yaml: its script and the source files its deps list."""
    stages = parse_yaml((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    result = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        script = body["cmd"].split("python ")[1].split()[0]
        listed = {dep for dep in body["deps"] if dep.startswith(("src/", "stages/"))}
        result[name] = (REPO_ROOT / script, listed)
    return result


def stage_code(script: Path) -> set[str]:
    """The source files a stage's script runs for its outputs."""
    code = {script, *import_closure(script)}
    return {path.relative_to(REPO_ROOT).as_posix() for path in code}


@pytest.mark.parametrize("stage", sorted(stage_code_deps()))
def test_every_stage_lists_exactly_the_code_it_runs(stage: str) -> None:
    script, listed = stage_code_deps()[stage]
    needed = stage_code(script)
    assert sorted(needed - listed) == [], f"{stage}: imported but not in dvc.yaml's deps"
    assert sorted(listed - needed) == [], f"{stage}: in dvc.yaml's deps but never imported"


def test_the_layers_import_only_downward() -> None:
    offences = []
    for folder, allowed in MAY_IMPORT.items():
        for path in sorted((SRC / PACKAGE / folder).glob("*.py")):
            for module in imported_modules(path):
                parts = module.split(".")
                if len(parts) < 3 or parts[1] == folder:
                    continue
                if parts[1] not in allowed:
                    offences.append(f"{path.relative_to(SRC)} imports {module}")
    assert offences == []


def test_top_level_modules_import_no_layer() -> None:
    """The top-level modules sit under every layer: they import none."""
    offences = [
        f"{path.name} imports {module}"
        for path in sorted((SRC / PACKAGE).glob("*.py"))
        for module in imported_modules(path)
        if module.count(".") >= 1 and module_file(module).parent != SRC / PACKAGE
    ]
    assert offences == []


def test_package_init_files_hold_only_a_docstring() -> None:
    """So importing a layer costs nothing, and the stages' deps can leave them out."""
    for path in sorted((SRC / PACKAGE).rglob("__init__.py")):
        body = ast.parse(path.read_text(encoding="utf-8")).body
        assert len(body) == 1 and isinstance(body[0], ast.Expr), path


def stage_params() -> dict[str, tuple[list[str], str]]:
    """Per stage of dvc.yaml: the params keys it lists (a matrix entry as `{entry}`) and the
    work module of its script."""
    stages = parse_yaml((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    result = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        keys = [
            # A whole params file is listed as a mapping `{file: None}`: `file:` here.
            f"{next(iter(key))}:"
            if isinstance(key, dict)
            else str(key).replace("${item.entry}", "{entry}")
            for key in body.get("params", [])
        ]
        result[name] = (keys, f"{PACKAGE}.pipeline.{name}")
    return result


@pytest.mark.parametrize("stage", sorted(stage_params()))
def test_every_stage_lists_the_params_its_work_declares(stage: str) -> None:
    keys, module = stage_params()[stage]
    declared = importlib.import_module(module).PARAMS
    assert keys == list(declared)
