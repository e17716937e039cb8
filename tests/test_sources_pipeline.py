"""Each series source through the real pipeline: `dvc repro` in a real git repo, the real
stage scripts, the real MLflow store."""

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from lstm_vs_rnn.data.sources import load_series, read_series
from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.evaluation.baselines import persistence_forecast
from lstm_vs_rnn.evaluation.metrics import forecast_metrics
from lstm_vs_rnn.params import load_params, split_point
from lstm_vs_rnn.paths import ProjectPaths
from tests.conftest import (
    TINY_STAGES,
    PipelineRepo,
    copy_project,
    make_pipeline_repo,
    run_statuses,
)

pytestmark = pytest.mark.e2e

CSV_SOURCE = {
    "data.source": "csv",
    "data.path": "data/sunspots/sunspots.csv",
    "data.column": "SUNACTIVITY",
    "data.time_column": "YEAR",
}


STAGES = TINY_STAGES
# The stages whose figures show the series' own names (its column and time column): the
# series figure and the predictions figure.
STAGES_DRAWING_THE_NAMES = ("generate", "evaluate")

# The value column of the dated CSV: Chinese and Cyrillic.
DATED_COLUMN = "销量 (Продажи)"


def stages_run(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def test_lagged_source_keeps_its_noise_floor(tmp_path: Path) -> None:
    """As far as `generate`, the stage this is about; the floor and persistence scored on its
    series as evaluate scores them (evaluate's noise floor in metrics.json: test_pipeline_e2e)."""
    repo = make_pipeline_repo(
        tmp_path / "project",
        {"data.source": "lagged", "data.lag": 5, "data.n_points": 400},
    )
    assert stages_run(repo.dvc("repro", "generate").stdout) == ["check_params", "generate"]
    params = load_params(repo.root / "params.yaml")
    series = read_series(ProjectPaths(repo.root).series_csv)
    split = split_point(len(series), params.data.train_fraction)
    values = series["y"].to_numpy()
    train, actual = values[:split], values[split:]
    clean = series["y_clean"].to_numpy()[split:]
    noise_floor = forecast_metrics(actual, clean, train)["test_rmse"]
    persistence = forecast_metrics(actual, persistence_forecast(values, len(actual)), train)
    # The clean signal is phi * y(t - lag), so the floor is the noise: std 0.5 in TINY_PARAMS'
    # project defaults, over 80 test points.
    assert noise_floor == pytest.approx(0.5, rel=0.2)
    assert persistence["test_rmse"] > noise_floor


BAD_CSVS = [
    (None, "error: data/own.csv: file not found (data.path in params.yaml)"),
    ("t,level\n1,2\n2,\n", "error: data/own.csv, line 3: empty cell in column 'level'"),
    ("t,value\n1,2\n", "error: data/own.csv: no column 'level' (set by data.column)"),
]
BAD_CSV_IDS = ["missing-file", "empty-cell", "missing-column"]


def write_csv_text(repo: PipelineRepo, csv_text: str | None) -> None:
    csv = repo.root / "data" / "own.csv"
    csv.unlink(missing_ok=True)
    if csv_text is not None:
        csv.write_text(csv_text)


@pytest.mark.parametrize(("csv_text", "expected"), BAD_CSVS, ids=BAD_CSV_IDS)
def test_a_bad_csv_stops_generate_with_one_line_and_writes_nothing(
    csv_repo: PipelineRepo,
    monkeypatch: pytest.MonkeyPatch,
    csv_text: str | None,
    expected: str,
) -> None:
    """In this process, as generate reads the series (`load_series`, before its MLflow run
    opens); one stage process refusing a bad CSV is the test below."""
    write_csv_text(csv_repo, csv_text)
    monkeypatch.chdir(csv_repo.root)  # the error names the path as given in params.yaml
    params = load_params(csv_repo.root / "params.yaml")
    with pytest.raises(UserError) as raised:
        load_series(params, Path("."))
    line = f"error: {raised.value}"  # as the stage prints it (cli.run_entry_point)
    assert "\n" not in line and line.startswith(expected), line
    assert not (csv_repo.root / "data" / "raw").exists()
    assert not (csv_repo.root / "mlflow.db").exists()


def test_generate_refusing_a_bad_csv_prints_one_line_and_writes_nothing(
    csv_repo: PipelineRepo,
) -> None:
    csv_text, expected = BAD_CSVS[1]
    write_csv_text(csv_repo, csv_text)
    result = csv_repo.stage("generate", check=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1
    assert len(lines) == 1 and lines[0].startswith(expected), result.stderr
    assert not (csv_repo.root / "data" / "raw").exists()
    assert not (csv_repo.root / "reports" / "figures" / "series.png").exists()
    assert "RUNNING" not in run_statuses(csv_repo.root).values()


@pytest.fixture(scope="module")
def csv_repo(tmp_path_factory: pytest.TempPathFactory) -> PipelineRepo:
    """A project copy pointed at data/own.csv, nothing run yet."""
    return make_pipeline_repo(
        tmp_path_factory.mktemp("bad-csv") / "project",
        {
            **CSV_SOURCE,
            "data.path": "data/own.csv",
            "data.column": "level",
            "data.time_column": "t",
        },
    )


@dataclass(frozen=True)
class DatedRun:
    """A project copy after `dvc repro` on a monthly CSV with Chinese and Cyrillic names."""

    repo: PipelineRepo
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def dated_run(tmp_path_factory: pytest.TempPathFactory) -> DatedRun:
    months = pd.date_range("1950-01-01", periods=144, freq="MS")
    sales = 100 + 10 * np.sin(np.arange(144) * 2 * np.pi / 12) + np.arange(144) * 0.5
    table = pd.DataFrame({"年份": months.strftime("%Y-%m"), DATED_COLUMN: sales.round(2)})
    repo = make_pipeline_repo(
        tmp_path_factory.mktemp("dated") / "project",
        {
            **CSV_SOURCE,
            "data.path": "data/user/sales.csv",
            "data.column": DATED_COLUMN,
            "data.time_column": "年份",
        },
    )
    (repo.root / "data" / "user").mkdir(parents=True)
    table.to_csv(repo.root / "data" / "user" / "sales.csv", index=False)
    repo.commit("a dated series with Chinese and Cyrillic column names")
    return DatedRun(repo, repo.dvc("repro"))


def test_a_dated_series_is_plotted_over_its_dates(dated_run: DatedRun) -> None:
    """`dvc plots show`, as JSON and as the HTML page: the predictions on a temporal x."""
    repo = dated_run.repo
    series = pd.read_csv(repo.root / "data" / "raw" / "series.csv")
    dates = series["t"].iloc[int(144 * 0.8) :].tolist()
    shown = json.loads(repo.dvc("plots", "show", "--json").stdout)["data"]
    repo.dvc("plots", "show", "-o", "plots-page")
    page = (repo.root / "plots-page" / "index.html").read_text()
    for spec in (predictions_spec(shown), predictions_spec_in_page(page)):
        assert_drawn_over_the_dates(spec, dates)


def test_a_dated_csv_with_chinese_and_cyrillic_names_runs_end_to_end(dated_run: DatedRun) -> None:
    from lstm_vs_rnn.reporting.fonts import missing_characters

    repo, result = dated_run.repo, dated_run.result
    series = pd.read_csv(repo.root / "data" / "raw" / "series.csv")
    output = result.stdout + result.stderr
    assert stages_run(result.stdout) == STAGES  # every stage, as far as evaluate
    assert "Glyph" not in output  # matplotlib's warning per glyph
    notes = [line for line in output.splitlines() if "no installed font has the glyphs" in line]
    if missing_characters("销量年份"):  # no CJK font here: one line per process that draws them
        assert notes and all("CJK (" in note for note in notes)
        assert len(notes) == len(STAGES_DRAWING_THE_NAMES), notes
    else:
        assert notes == []
    metrics = json.loads((repo.root / "reports" / "metrics.json").read_text())
    assert "noise_floor" not in metrics  # no clean signal is known for real data
    assert {"persistence", "ar", "lstm_vs_rnn"} <= set(metrics)
    series = pd.read_csv(repo.root / "data" / "raw" / "series.csv")
    assert (series["t"].iloc[0], series["t"].iloc[-1]) == ("1950-01-01", "1961-12-01")
    predictions = pd.read_csv(repo.root / "reports" / "plots" / "predictions.csv")
    assert predictions["date"].iloc[-1] == "1961-12-01"
    actual = predictions[predictions["model"] == "actual"]
    assert actual["date"].tolist() == series["t"].iloc[int(144 * 0.8) :].tolist()
    # t holds decimal years, 1961-12-01 = 1961 + 334/365, for code that wants numbers.
    assert actual["t"].iloc[-1] == pytest.approx(1961 + 334 / 365)
    assert actual["t"].is_monotonic_increasing
    for figure in ("series", "predictions"):
        assert (repo.root / "reports" / "figures" / f"{figure}.png").stat().st_size > 10_000


def configuration_runs(client: MlflowClient) -> list:
    experiment = client.get_experiment_by_name("lstm-vs-rnn").experiment_id
    return client.search_runs([experiment], "tags.`pipeline.role` = 'configuration'")


def test_the_users_csv_is_a_configuration_and_an_edit_to_it_reruns_the_pipeline(
    dated_run: DatedRun, tmp_path: Path
) -> None:
    """On a copy of the dated run, as far as `scale` (the shipped sunspots CSV read as the
    series: test_sources.py)."""
    repo = copy_project(dated_run.repo.root, tmp_path / "project")
    client = MlflowClient(repo.tracking_uri)
    (parent,) = configuration_runs(client)
    assert parent.data.params["data.source"] == "csv"
    assert parent.data.params["data.column"] == DATED_COLUMN
    assert "data.n_points" not in parent.data.params  # only the active source's keys
    assert f"sales.csv:{DATED_COLUMN}" in parent.info.run_name

    csv = repo.root / "data" / "user" / "sales.csv"
    *rows, last = csv.read_text().splitlines()
    month, value = last.split(",")
    csv.write_text("\n".join([*rows, f"{month},{float(value) + 0.2:.2f}"]) + "\n")
    assert "generate" in repo.dvc("status").stdout  # everything downstream of it is stale too
    assert stages_run(repo.dvc("repro", "scale").stdout) == ["generate", "scale"]
    assert len(configuration_runs(client)) == 2, "an edited CSV is a new configuration in MLflow"


def predictions_spec(shown: dict) -> dict:
    """The Vega-Lite spec of the predictions plot in `dvc plots show --json`."""
    (plot,) = [plots for title, plots in shown.items() if title.startswith("Test part")]
    return plot[0]["content"]


def predictions_spec_in_page(page: str) -> dict:
    """The Vega-Lite spec of the predictions plot on the HTML page `dvc plots show` renders."""
    specs = [json.loads(text) for text in re.findall(r"var spec = (\{.*?\});\s*vegaEmbed", page)]
    (spec,) = [spec for spec in specs if spec["title"]["text"].startswith("Test part")]
    return spec


def assert_drawn_over_the_dates(spec: dict, dates: list[str]) -> None:
    """Every row of the series and the forecast is drawn on the temporal layer, at its date."""
    dated, stepped = spec["layer"]
    assert dated["encoding"]["x"]["type"] == "temporal"
    assert dated["encoding"]["x"]["field"] == "date"
    assert stepped["encoding"]["x"]["type"] == "quantitative"
    rows = spec["data"]["values"]
    assert all(row.get("date") for row in rows)  # none is left for the step layer
    assert [row["date"] for row in rows if row["model"] == "actual"] == dates
    assert {row["model"] for row in rows} == {"actual", "lstm", "rnn"}


def test_an_experiment_copy_lacks_an_untracked_csv_and_the_documented_ways_out_work(
    tmp_path: Path,
) -> None:
    """DVC runs queued and --temp experiments in a copy built from git; it stops on the missing
    dependency before our stage runs, so what docs/your-own-series.md says is what helps."""
    repo = make_pipeline_repo(tmp_path / "project")
    user = repo.root / "data" / "user"
    user.mkdir(parents=True)
    rows = "".join(f"{2000 + i},{i % 7 + 0.5}\n" for i in range(120))
    (user / "sales.csv").write_text("year,sales\n" + rows)  # in the workspace, not in git
    settings = ["-S", "data.source=csv", "-S", "data.path=data/user/sales.csv"]
    settings += ["-S", "data.column=sales", "-S", "data.time_column=year"]

    failed = repo.dvc("exp", "run", "--temp", *settings, "generate", check=False)
    assert failed.returncode != 0
    missing = r"No such file or directory: '.*/\.dvc/tmp/exps/.*/data/user/sales\.csv'"
    assert re.search(missing, failed.stderr), failed.stderr

    # Way out 1: copy the untracked folder into the experiment's copy (naming the file alone
    # fails while its folder is not in git either: DVC 3.67 does not create the folder).
    repo.dvc("exp", "run", "--temp", "--copy-paths", "data/user", *settings, "generate")
    # Way out 2: track it with DVC (commit the .dvc file): the copy gets it from DVC's cache.
    repo.dvc("add", "data/user/sales.csv")
    repo.commit("track the user's CSV with DVC")
    repo.dvc("exp", "run", "--temp", *settings, "generate")
