"""The logged MLflow model loads where only its own requirements are installed.

As `mlflow models serve --env-manager virtualenv` or a Spark UDF would: a fresh virtual
environment gets the model's `requirements.txt` and `mlflow-skinny` of the installed version,
nothing else (no tqdm, SciPy, scikit-learn or this project), and must load and run each kind
of logged model. One environment serves the module; it costs about a minute (pip from the local
wheel cache), so the models of every architecture are loaded in it together.
"""

import json
import shutil
import subprocess
import sys
import venv
from importlib import metadata
from pathlib import Path

import mlflow
import numpy as np
import pytest

from lstm_vs_rnn.data.scaling import MinMaxScaling
from lstm_vs_rnn.files import write_text
from lstm_vs_rnn.modeling.checkpoints import ForecasterFiles, save_weights
from lstm_vs_rnn.modeling.networks import build_model
from lstm_vs_rnn.params import MODEL_ARCHITECTURES, ModelParams
from lstm_vs_rnn.tracking.logged_model import log_forecaster

WINDOW = 6
HORIZON = 3
# Loads each model folder named on the command line and prints its forecasts as JSON.
LOAD_AND_PREDICT = """
import json, sys
import mlflow.pyfunc
import numpy as np
windows = np.array(json.loads(sys.argv[1]), dtype=np.float64)
out = {}
for folder in sys.argv[3:]:
    model = mlflow.pyfunc.load_model(folder)
    out[folder] = [
        model.predict(windows).tolist(),
        model.predict(windows, params={"horizon": int(sys.argv[2])}).tolist(),
    ]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def logged_models(
    tmp_path_factory: pytest.TempPathFactory, migrated_store: Path
) -> dict[str, Path]:
    """One logged model per architecture, through a real SQLite store, downloaded to folders."""
    root = tmp_path_factory.mktemp("logged")
    shutil.copy2(migrated_store, root / "mlflow.db")  # an empty store, its schema made once
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    series = 10 + np.sin(np.arange(60) * 0.3)
    scaler = MinMaxScaling.fit(series)
    write_text(root / "scaler.json", scaler.to_json())
    folders = {}
    try:
        client = mlflow.MlflowClient()
        # Artifacts beside the store, not in MLflow's default ./mlruns of the working directory.
        experiment_id = client.create_experiment(
            "logged-model-env", artifact_location=(root / "artifacts").as_uri()
        )
        for arch in MODEL_ARCHITECTURES:
            model = build_model(ModelParams(arch=arch, hidden_size=3, num_layers=1), seed=1)
            save_weights(model.eval(), root / f"{arch}.pt")
            spec = {"name": arch, "arch": arch, "hidden_size": 3, "num_layers": 1}
            run = client.create_run(experiment_id)
            log_forecaster(
                run.info.run_id,
                arch,
                ForecasterFiles(weights=root / f"{arch}.pt", scaler=root / "scaler.json"),
                {**spec, "window": WINDOW},
                np.lib.stride_tricks.sliding_window_view(series, WINDOW)[:2],
                {"repeat": "0"},
            )
            (logged,) = mlflow.search_logged_models(
                experiment_ids=[experiment_id],
                filter_string=f"source_run_id = '{run.info.run_id}'",
                output_format="list",
            )
            folders[arch] = Path(
                mlflow.artifacts.download_artifacts(
                    f"models:/{logged.model_id}", dst_path=str(root / arch)
                )
            )
    finally:
        mlflow.set_tracking_uri(None)
    return folders


@pytest.fixture(scope="module")
def requirements_only_python(
    logged_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A virtual environment with one model's requirements.txt and mlflow-skinny alone."""
    (requirements,) = {
        (folder / "requirements.txt").read_text() for folder in logged_models.values()
    }
    folder = tmp_path_factory.mktemp("venv")
    # Without pip of its own (ensurepip costs seconds): this process's pip installs into it.
    venv.create(folder, with_pip=False)
    python = folder / "bin" / "python"
    (folder / "requirements.txt").write_text(requirements)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-compile",
            "-r",
            str(folder / "requirements.txt"),
            f"mlflow-skinny=={metadata.version('mlflow-skinny')}",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return python


def test_the_requirements_pin_exactly_what_the_shipped_code_imports(
    logged_models: dict[str, Path],
) -> None:
    lines = (logged_models["lstm"] / "requirements.txt").read_text().split()
    names = {line.split("==")[0].lower() for line in lines}
    # params.py imports ruamel.yaml (YAML 1.2, as DVC reads it; the `ruamel` namespace is also
    # ruamel.yaml.clib's, its C parser) and annotated_types; MLflow adds its own pin.
    shipped = {
        "torch",
        "numpy",
        "pandas",
        "pydantic",
        "annotated-types",
        "ruamel.yaml",
        "ruamel.yaml.clib",
    }
    assert names == shipped | {"mlflow"}
    assert not names & {"tqdm", "scipy", "scikit-learn", "matplotlib"}
    assert all("==" in line for line in lines)


def test_each_logged_model_loads_and_forecasts_with_its_requirements_alone(
    logged_models: dict[str, Path], requirements_only_python: Path
) -> None:
    windows = np.lib.stride_tricks.sliding_window_view(9 + np.cos(np.arange(20) * 0.4), WINDOW)
    found = subprocess.run(
        [str(requirements_only_python), "-c", "import tqdm"], capture_output=True, text=True
    )
    assert "No module named 'tqdm'" in found.stderr  # the environment is really bare
    loaded = subprocess.run(
        [
            str(requirements_only_python),
            "-c",
            LOAD_AND_PREDICT,
            json.dumps(windows.tolist()),
            str(HORIZON),
            *map(str, logged_models.values()),
        ],
        capture_output=True,
        text=True,
        cwd=requirements_only_python.parents[1],
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    forecasts = json.loads(loaded.stdout.splitlines()[-1])
    for folder in logged_models.values():
        here = mlflow.pyfunc.load_model(str(folder))
        one_step, steps = forecasts[str(folder)]
        np.testing.assert_allclose(one_step, here.predict(windows), rtol=1e-12)
        np.testing.assert_allclose(
            steps, here.predict(windows, params={"horizon": HORIZON}), rtol=1e-12
        )
        assert np.shape(steps) == (len(windows), HORIZON)
    assert sys.prefix != str(requirements_only_python.parents[1])
