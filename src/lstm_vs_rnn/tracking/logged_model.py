"""Logging a model entry's forecaster as an MLflow pyfunc model that forecasts in raw units."""

from __future__ import annotations

import ast
import json
import shutil
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lstm_vs_rnn.modeling.checkpoints import ForecasterFiles


def log_forecaster(
    run_id: str,
    name: str,
    files: ForecasterFiles,
    spec: dict[str, Any],
    input_example: Any,
    tags: dict[str, str],
) -> str:
    """Log a pyfunc model, named after its model entry, that forecasts in raw units, into run
    `run_id`; return its model id (`models:/<model id>` loads it).

    Models from code (`modeling/mlflow_model.py`) with the weights, scaler and network spec as
    artifacts: no pickle and no `torch.export`. The package modules the model imports
    (`files.package_files`) ship beside it, in the package's own folder layout. Requirements
    are derived from the shipped code's imports (`shipped_requirements`), not inferred by
    MLflow (inference costs 2-6 s a call).
    """
    import mlflow
    import mlflow.pyfunc
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec

    # No input schema: MLflow's tensor schema refuses float32 arrays and lists before the
    # model sees them; the model checks its input itself (mlflow_model.as_windows) and the
    # expected shape is in the model's metadata. Output: (n, horizon) forecasts.
    signature = ModelSignature(
        inputs=None,
        outputs=Schema([TensorSpec(np.dtype("float64"), (-1, -1))]),
        params=ParamSchema([ParamSpec("horizon", "long", 1)]),
    )
    with tempfile.TemporaryDirectory() as folder:
        spec_file = Path(folder) / "spec.json"
        spec_file.write_text(json.dumps(spec, indent=2, sort_keys=True), encoding="utf-8")
        package = Path(folder) / files.package_dir.name
        for module in files.package_files:
            target = package / module
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(files.package_dir / module, target)
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name=name,
                python_model=str(files.python_model),
                artifacts=files.artifacts(spec_file),
                code_paths=[str(package)],
                signature=signature,
                input_example=input_example,
                pip_requirements=shipped_requirements(files),
                tags=tags,
                metadata=model_metadata(spec["window"]),
            )
    return info.model_id


def shipped_requirements(files: ForecasterFiles) -> list[str]:
    """Exact pins (`name==version`) of the installed distributions the shipped code imports.

    Reads the top-level imports of the model's code and of every module in
    `files.package_files` (with `ast`, nothing is executed), drops the standard library, this
    package and MLflow (which MLflow pins itself), and maps each remaining import name to the
    distribution that provides it (`importlib.metadata.packages_distributions`, e.g. `ruamel`
    -> ruamel.yaml) at its installed version, without a local label (`2.13.0+cpu` -> `2.13.0`).
    Sorted by name, so the same code gives the same list.

    Raises:
        UserError: a shipped module imports a name no installed distribution provides.
    """
    from lstm_vs_rnn.errors import UserError

    sources = [files.python_model, *(files.package_dir / name for name in files.package_files)]
    names = set().union(*(_top_level_imports(path) for path in sources))
    own = {files.package_dir.name, "mlflow", *sys.stdlib_module_names}
    providers = metadata.packages_distributions()
    pins = set()
    for name in sorted(names - own):
        if name not in providers:
            raise UserError(
                f"the logged model's code imports '{name}', which no installed distribution "
                f"provides; install it or remove the import from the shipped modules"
            )
        for distribution in providers[name]:
            version = metadata.version(distribution).split("+")[0]
            pins.add(f"{distribution}=={version}")
    return sorted(pins, key=str.lower)


def _top_level_imports(path: Path) -> set[str]:
    """The first component of every absolute import in the Python file `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def model_metadata(window: int) -> dict[str, str]:
    """What the logged model takes and returns, in its MLmodel file (`metadata`)."""
    return {
        "input": f"windows of shape (n, {window}) in the series' units, oldest value first: "
        "any real-valued array-like (numpy array of floats or integers, list of lists, "
        "DataFrame)",
        "output": "forecasts of shape (n, horizon) in the series' units; params "
        '{"horizon": h}, default 1',
    }
