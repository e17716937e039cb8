"""Where every file of the pipeline lives, relative to one project root.

The root is the checkout that holds the running code. Under `dvc exp run --queue` or `--temp`
that is DVC's temporary copy, so inputs and outputs are read and written there, as DVC expects.
Only the MLflow store is anchored to the *workspace* (`DVC_ROOT`), so that runs logged from a
temporary copy survive the copy's deletion.
"""

import os
from dataclasses import dataclass, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def workspace_root() -> Path:
    """The user's workspace: DVC_ROOT when DVC runs us (it points there even from a temp copy)."""
    return Path(os.environ.get("DVC_ROOT") or PROJECT_ROOT).resolve()


@dataclass(frozen=True)
class ProjectPaths:
    """Every path the stages read or write, for one project root and one rolling-origin fold
    (`evaluate.folds`; `for_fold`): a fold's scaled parts, tuning results, weights and loss
    histories sit in a `fold_<k>` folder of their own, the rest is shared."""

    root: Path
    fold: int = 0

    def for_fold(self, fold: int) -> "ProjectPaths":
        """The same root's paths for fold `fold`."""
        return replace(self, fold=fold)

    @property
    def fold_folder(self) -> str:
        return f"fold_{self.fold}"

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def params_checked(self) -> Path:
        """Written by check_params when all of params.yaml is valid; every stage depends on it."""
        return self.root / "data" / "params_checked.txt"

    @property
    def series_csv(self) -> Path:
        return self.root / "data" / "raw" / "series.csv"

    @property
    def processed_dir(self) -> Path:
        """This fold's scaled parts and scaler; `data/processed` holds every fold's."""
        return self.root / "data" / "processed" / self.fold_folder

    @property
    def train_array(self) -> Path:
        return self.processed_dir / "train.npy"

    @property
    def test_array(self) -> Path:
        return self.processed_dir / "test.npy"

    @property
    def scaler_json(self) -> Path:
        return self.processed_dir / "scaler.json"

    def model_dir(self, model: str) -> Path:
        return self.root / "models" / self.fold_folder / model

    def model_weights(self, model: str, repeat: int) -> Path:
        return self.model_dir(model) / f"repeat_{repeat:03d}.pt"

    def tuning_result(self, model: str) -> Path:
        """The settings tune@<model> chose, and every trial (readable JSON, DVC-tracked)."""
        return self.root / "tuning" / self.fold_folder / f"{model}.json"

    def loss_history(self, model: str) -> Path:
        return self.root / "reports" / "plots" / "losses" / self.fold_folder / f"{model}.csv"

    def loss_figure(self, model: str) -> Path:
        return self.figures_dir / self.fold_folder / f"loss_{model}.png"

    def model_outputs(self, model: str) -> list[Path]:
        """What stages tune@<model>-<fold> and train@<model>-<fold> write (their `outs` in
        dvc.yaml)."""
        return [
            self.tuning_result(model),
            self.model_dir(model),
            self.loss_figure(model),
            self.loss_history(model),
        ]

    def trained_entries(self) -> set[tuple[str, int]]:
        """The (entry, fold) pairs some tune or train stage left outputs of in this checkout."""
        folds = "fold_*"
        found = {path for path in (self.root / "models").glob(f"{folds}/*") if path.is_dir()}
        found |= set((self.root / "tuning").glob(f"{folds}/*.json"))
        found |= set(self.loss_history("x").parent.parent.glob(f"{folds}/*.csv"))
        found |= set(self.figures_dir.glob(f"{folds}/loss_*.png"))
        return {
            (path.stem.removeprefix("loss_"), int(path.parent.name.removeprefix("fold_")))
            for path in found
            if path.parent.name.removeprefix("fold_").isdigit()
        }

    @property
    def loss_curves(self) -> Path:
        """Every model's loss histories in one table with a `model` column (DVC plots data)."""
        return self.root / "reports" / "plots" / "loss_curves.csv"

    @property
    def predictions_table(self) -> Path:
        """The test part's actual values and each model's predictions, long format."""
        return self.root / "reports" / "plots" / "predictions.csv"

    @property
    def repeats_table(self) -> Path:
        """Every repeat's test metrics and training summary, all models (DVC plots data)."""
        return self.root / "reports" / "plots" / "repeats.csv"

    @property
    def grad_sensitivity(self) -> Path:
        """Each model's sensitivity to the input k steps back, per lag (DVC plots data)."""
        return self.root / "reports" / "plots" / "grad_sensitivity.csv"

    @property
    def horizon_table(self) -> Path:
        """RMSE per forecast step of every repeat and baseline, long format (DVC plots data)."""
        return self.root / "reports" / "plots" / "horizon.csv"

    @property
    def claims_md(self) -> Path:
        return self.root / "reports" / "claims.md"

    @property
    def metrics_json(self) -> Path:
        return self.root / "reports" / "metrics.json"

    @property
    def figures_dir(self) -> Path:
        return self.root / "reports" / "figures"

    def figure(self, name: str) -> Path:
        return self.figures_dir / f"{name}.png"


PATHS = ProjectPaths(PROJECT_ROOT)
