"""Model weights on disk: a plain state_dict, saved atomically, loaded with weights_only=True."""

import io
from dataclasses import dataclass
from pathlib import Path

import torch

from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.files import write_with
from lstm_vs_rnn.modeling.networks import RecurrentForecaster, build_model
from lstm_vs_rnn.params import ModelParams

# The files a logged MLflow model carries (see mlflow_model.py), by artifact key.
WEIGHTS_ARTIFACT, SCALER_ARTIFACT, SPEC_ARTIFACT = "weights", "scaler", "spec"
# The MLflow model's code, loaded by MLflow from this path ("models from code"), and the
# modules of this package it imports, relative to the package folder: all that ships with the
# model (no tracking client code), in the package's own layout.
FORECASTER_CODE = Path(__file__).with_name("mlflow_model.py")
PACKAGE_DIR = Path(__file__).resolve().parents[1]
FORECASTER_MODULES = (
    "__init__.py",
    "errors.py",
    "files.py",
    "params.py",
    "data/__init__.py",
    "data/scaling.py",
    "modeling/__init__.py",
    "modeling/checkpoints.py",
    "modeling/multistep.py",
    "modeling/networks.py",
    "modeling/prediction.py",
)


@dataclass(frozen=True)
class ForecasterFiles:
    """The files an MLflow forecaster is logged from: one repeat's weights, the scaler, and the
    code MLflow loads (`mlflow_model.py`) with the package modules it imports.

    The tracking code logs whatever this names; which code ships is decided here, beside the
    modules it lists."""

    weights: Path
    scaler: Path
    python_model: Path = FORECASTER_CODE
    package_dir: Path = PACKAGE_DIR
    package_files: tuple[str, ...] = FORECASTER_MODULES

    def artifacts(self, spec_file: Path) -> dict[str, str]:
        """MLflow's `artifacts` argument: the weights, scaler and network spec by key."""
        return {
            WEIGHTS_ARTIFACT: str(self.weights),
            SCALER_ARTIFACT: str(self.scaler),
            SPEC_ARTIFACT: str(spec_file),
        }


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """Serialise through a buffer: torch.save names the archive after a path it writes to,
    and the temporary file's random name would make identical weights differ byte for byte."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    write_with(path, lambda temporary: temporary.write_bytes(buffer.getvalue()))


def load_model(name: str, settings: ModelParams, path: Path) -> RecurrentForecaster:
    """Rebuild `name` from params and load its weights; a mismatch names the file and why."""
    model = build_model(settings)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found; run `dvc repro` (its train stage)") from None
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise UserError(
            f"{path}: not a model state_dict saved by a train stage of '{name}' ({_describe(exc)})"
        ) from None
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise UserError(
            f"{path}: weights do not fit the '{name}' model in params.yaml "
            f"(arch={settings.arch}, hidden_size={settings.hidden_size}, "
            f"num_layers={settings.num_layers}); "
            f"re-run its train stage ({_describe(exc)})"
        ) from None
    return model.eval()


def _describe(exc: Exception) -> str:
    """The exception's type and first line; some (EOFError on an empty file) have no text."""
    lines = str(exc).splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
