"""Logging a model entry's forecaster as an MLflow pyfunc model that forecasts in raw units."""

from __future__ import annotations

import json
import shutil
import tempfile
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
) -> None:
    """Log a pyfunc model, named after its model entry, that forecasts in raw units, into run
    `run_id`.

    Models from code (`modeling/mlflow_model.py`) with the weights, scaler and network spec as
    artifacts: no pickle and no `torch.export`. The package modules the model imports
    (`files.package_files`) ship beside it, in the package's own folder layout. Requirements
    are given, not inferred (inference costs 2-6 s a call).
    """
    import mlflow
    import mlflow.pyfunc
    import numpy as np
    import torch
    import yaml
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
            mlflow.pyfunc.log_model(
                name=name,
                python_model=str(files.python_model),
                artifacts=files.artifacts(spec_file),
                code_paths=[str(package)],
                signature=signature,
                input_example=input_example,
                pip_requirements=[
                    f"torch=={torch.__version__.split('+')[0]}",
                    f"numpy=={np.__version__}",
                    f"pyyaml=={yaml.__version__}",
                ],
                tags=tags,
                metadata=model_metadata(spec["window"]),
            )


def model_metadata(window: int) -> dict[str, str]:
    """What the logged model takes and returns, in its MLmodel file (`metadata`)."""
    return {
        "input": f"windows of shape (n, {window}) in the series' units, oldest value first: "
        "any real-valued array-like (numpy array of floats or integers, list of lists, "
        "DataFrame)",
        "output": "forecasts of shape (n, horizon) in the series' units; params "
        '{"horizon": h}, default 1',
    }
