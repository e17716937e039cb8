"""Comparing experiments with DVC, for real: `make compare` in 100 columns, and the charts of
`dvc plots diff` drawn with no internet.

A baseline, one experiment run in the workspace and one queued, in a temporary repository;
then the same with metrics of the shape that repeated training will add (`.mean`, `.std`,
`.ci95_low`, a difference between the models), written into the workspace's metrics file.
"""

import csv
import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import EDITED_LSTM_HIDDEN_SIZE, REPO_ROOT, BuiltPipeline, PipelineRepo

pytestmark = pytest.mark.e2e

WIDTH = 100
CHROMIUM = Path("/usr/bin/chromium")
# The project's offline page template, as `.dvc/config` names it (relative to .dvc/).
PLOTS_TEMPLATE = "plots/offline.html"
# The experiment run in the workspace: the second configuration `edited_pipeline` ran.
HIDDEN = str(EDITED_LSTM_HIDDEN_SIZE)
EXPERIMENT = f"lstm-h{HIDDEN}"


@pytest.fixture(scope="module")
def repo(
    tmp_path_factory: pytest.TempPathFactory, edited_pipeline: BuiltPipeline
) -> Iterator[PipelineRepo]:
    """The baseline committed (`edited_pipeline`'s first configuration, checked out), one
    experiment run in the workspace and one queued. The experiment's configuration is the
    second one `edited_pipeline` ran: DVC restores its training from the run cache."""
    repo = edited_pipeline.copy_to(tmp_path_factory.mktemp("compare") / "project")
    repo.run("git", "checkout", "params.yaml", "dvc.lock", "reports")
    repo.dvc("checkout")
    repo.dvc("exp", "run", "-n", EXPERIMENT, "-S", f"models.lstm.hidden_size={HIDDEN}")
    repo.dvc("exp", "run", "--queue", "-n", "lr-003", "-S", "train.learning_rate=0.03")
    yield repo


def compare(repo: PipelineRepo) -> list[str]:
    result = repo.run(
        "python", "-m", "lstm_vs_rnn.commands.experiments_table", env={"PYTHONPATH": "src"}
    )
    print(result.stdout)
    return result.stdout.splitlines()


def widest_line(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def test_compare_shows_headline_metrics_and_changed_params_in_100_columns(
    repo: PipelineRepo,
) -> None:
    full = repo.dvc("exp", "show", "--no-pager", env={"COLUMNS": "10000"}).stdout
    print(f"plain 'dvc exp show': {widest_line(full)} characters wide")
    lines = compare(repo)
    assert max(len(line) for line in lines) <= WIDTH
    top, bottom, *rows = lines
    assert top.split() == ["experiment", "lstm", "lstm_vs_rnn", "rnn", "train", "models", "state"]
    assert bottom.split() == [
        "test_rmse",
        "rmse_diff",
        "test_rmse",
        "learning_rate",
        "lstm.hidden_size",
    ]
    by_name = {row.split()[0]: row.split()[1:] for row in rows}
    assert set(by_name) == {"workspace", "main", EXPERIMENT, "lr-003"}
    metrics = json.loads((repo.root / "reports" / "metrics.json").read_text())
    shown = [
        f"{metrics['lstm']['test_rmse']['mean']:.4f}",
        f"{metrics['lstm_vs_rnn']['rmse_diff']['mean']:.4f}",
        f"{metrics['rnn']['test_rmse']['mean']:.4f}",
    ]
    assert by_name[EXPERIMENT] == [*shown, "0.01", HIDDEN]
    assert by_name["workspace"] == [*shown, "0.01", HIDDEN]
    assert by_name["main"][3:] == ["0.01", "8"]
    assert by_name["lr-003"] == ["-", "-", "-", "0.03", HIDDEN, "Queued"]
    assert "/" not in top + bottom  # no file dependencies
    assert "test_mae" not in bottom and "persistence" not in top  # baselines did not change


def test_compare_stays_within_100_columns_as_metrics_grow(repo: PipelineRepo) -> None:
    """The shape repeated training gives metrics.json: statistics per model, the difference of
    the primary pair and of an exploratory one; only the means of the models and the primary
    pair are headline."""
    path = repo.root / "reports" / "metrics.json"
    original = path.read_text()
    path.write_text(json.dumps(grown_metrics(json.loads(original))))
    try:
        lines = compare(repo)
    finally:
        path.write_text(original)
    assert max(len(line) for line in lines) <= WIDTH
    top, bottom, workspace = lines[0].split(), lines[1].split(), lines[2].split()
    assert top[:4] == ["experiment", "lstm", "rnn", "lstm_vs_rnn"]
    assert bottom[:3] == ["test_rmse", "test_rmse", "rmse_diff"]  # means, merged with values
    assert workspace[:4] == ["workspace", "0.7000", "0.6000", "0.0500"]
    assert not any(word.endswith(("ci95_low", "std", "ci95_high")) for word in bottom)
    assert "ar" not in top and "verdict" not in bottom  # a baseline only where it changed
    assert "gru_vs_rnn" not in top  # only the primary pairs' differences


def grown_metrics(metrics: dict[str, dict[str, float]]) -> dict[str, object]:
    """metrics.json with other numbers for the models and their difference (statistics per
    model metric, a paired comparison with a verdict) and the same baselines."""

    def stats(value: float) -> dict[str, float]:
        return {"mean": value, "std": 0.01, "ci95_low": value - 0.02, "ci95_high": value + 0.02}

    grown: dict[str, object] = {
        name: {"failures": 0, **{f"test_{m}": stats(value) for m in ("rmse", "mae", "mase")}}
        for name, value in (("lstm", 0.7), ("rnn", 0.6))
    }
    grown["lstm_vs_rnn"] = {
        "rmse_diff": stats(0.05),
        "lstm_wins": 0.3,
        "verdict": "no clear difference",
        "p": 0.2,
    }
    # An exploratory pair (not in evaluate.primary): its difference is the two columns'.
    grown["gru_vs_rnn"] = {"rmse_diff": stats(-0.02), "verdict": "exploratory"}
    grown.update({name: metrics[name] for name in ("persistence", "ar", "noise_floor")})
    return grown


def test_a_failing_dvc_exp_show_is_one_line(repo: PipelineRepo) -> None:
    result = repo.run(
        "python", "-m", "lstm_vs_rnn.commands.experiments_table", "--no-such-option",
        env={"PYTHONPATH": "src"}, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: 'dvc exp show' failed: ERROR: unrecognized arguments: --no-such-option"
    ]


def test_compare_into_a_closed_pipe_ends_quietly(repo: PipelineRepo) -> None:
    """`make compare | head` with the reader gone before the table is written: no traceback,
    the status `cat` would have there (killed by SIGPIPE: 128 + 13)."""
    compare = subprocess.Popen(
        ["python", "-m", "lstm_vs_rnn.commands.experiments_table"],
        cwd=repo.root,
        env={**repo.env, "PYTHONPATH": "src"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    compare.stdout.close()  # before `dvc exp show` returns: the table meets a closed pipe
    stderr = compare.communicate(timeout=120)[1]
    assert (compare.returncode, stderr) == (141, "")


def test_the_project_configures_the_offline_plots_template() -> None:
    config = (REPO_ROOT / ".dvc" / "config").read_text()
    assert f"html_template = {PLOTS_TEMPLATE}" in config


def test_plots_diff_draws_its_charts_with_no_network(repo: PipelineRepo, tmp_path: Path) -> None:
    """The page has no script from elsewhere, and Chromium, with every non-file request
    refused, draws each Vega chart on it."""
    out = tmp_path / "plots"
    repo.dvc("plots", "diff", "main", "-o", str(out))
    page_html = (out / "index.html").read_text()
    assert "<script src" not in page_html and "cdn.jsdelivr" not in page_html
    charts = page_html.count("vegaEmbed('#")
    assert charts == 5  # loss curves, each repeat's test RMSE, predictions, gradients, per step
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            refused: list[str] = []

            def local_files_only(route) -> None:
                if route.request.url.startswith("file:"):
                    route.continue_()
                else:
                    refused.append(route.request.url)
                    route.abort()

            page.route("**/*", local_files_only)
            page.goto((out / "index.html").as_uri())
            drawn = page.locator(".vega-embed canvas, .vega-embed svg.marks")
            expect(drawn).to_have_count(charts, timeout=60_000)
        finally:
            browser.close()
    assert refused == []


def queued_params(repo: PipelineRepo, *keys: str) -> dict[str, list[str]]:
    """Each queued experiment's values of `keys`, as `dvc exp show` lists them."""
    rows = csv.DictReader(io.StringIO(repo.dvc("exp", "show", "--csv").stdout))
    return {row["Experiment"]: [row[key] for key in keys] for row in rows if row["State"]}


def test_the_readme_workflow_queues_experiments_that_differ_by_their_own_change(
    repo: PipelineRepo,
) -> None:
    """A workspace `dvc exp run` leaves its params behind, and the queue starts from the
    workspace; after the README's way back, each queued run differs by its own -S only.
    Last in this module: it empties the queue and resets the workspace of `repo`."""
    keys = ("models.lstm.hidden_size", "train.learning_rate")
    # The fixture ran `-S models.lstm.hidden_size=HIDDEN` in the workspace, then queued lr-003.
    assert queued_params(repo, *keys) == {"lr-003": [HIDDEN, "0.03"]}
    repo.dvc("queue", "remove", "--all")

    repo.run("git", "checkout", "params.yaml", "dvc.lock", "reports")  # the README's way back
    repo.dvc("checkout")
    assert repo.run("git", "status", "--porcelain").stdout == ""
    repo.dvc("exp", "run", "--queue", "-n", "lstm-h32", "-S", "models.lstm.hidden_size=32")
    repo.dvc("exp", "run", "--queue", "-n", "lr-0.003", "-S", "train.learning_rate=0.003")
    assert queued_params(repo, *keys) == {"lstm-h32": ["32", "0.01"], "lr-0.003": ["8", "0.003"]}
