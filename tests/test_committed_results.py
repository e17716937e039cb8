"""The committed results are what this code produces: the default series and its scaling.

Data generation and scaling are NumPy only, identical across CPUs, so the `generate` and
`scale` outputs recorded in the committed `dvc.lock` must come out byte for byte (same md5) from
a fresh `dvc repro` with the committed params.yaml; and the default series starts with
sin(t) plus the first draws of NumPy's legacy RandomState(42), which are published.
"""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from tests.conftest import REPO_ROOT, make_pipeline_repo

# np.random.RandomState(42).randn(3): NumPy's legacy stream, fixed across releases.
FIRST_STANDARD_NORMALS = (0.4967141530112327, -0.13826430117118466, 0.6476885381006925)
DATA_OUTPUTS = ("data/raw/series.csv", "data/processed")


def locked_hashes(lock: Path) -> dict[str, str]:
    """The md5 of each data output of `generate` and `scale` in a dvc.lock."""
    stages = yaml.safe_load(lock.read_text())["stages"]
    outs = [out for stage in ("generate", "scale") for out in stages[stage]["outs"]]
    return {out["path"]: out["md5"] for out in outs if out["path"] in DATA_OUTPUTS}


def test_the_committed_data_hashes_and_first_values_are_what_the_code_produces(
    tmp_path: Path,
) -> None:
    repo = make_pipeline_repo(tmp_path / "project")
    shutil.copy2(REPO_ROOT / "params.yaml", repo.root / "params.yaml")
    repo.dvc("repro", "scale")

    assert locked_hashes(repo.root / "dvc.lock") == locked_hashes(REPO_ROOT / "dvc.lock")
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["data"]
    assert (params["source"], params["seed"], params["t_step"]) == ("sine", 42, 0.1)
    series = pd.read_csv(repo.root / "data" / "raw" / "series.csv")
    t = np.arange(3) * 0.1
    expected = np.sin(t) + params["noise_std"] * np.array(FIRST_STANDARD_NORMALS)
    np.testing.assert_allclose(series["t"].to_numpy()[:3], t, rtol=0, atol=1e-12)
    np.testing.assert_allclose(series["y"].to_numpy()[:3], expected, rtol=1e-12)
