"""Comparing runs in the MLflow UI, proven in a real browser.

A real pipeline runs twice in a temporary repository (the second time with a bigger LSTM),
`python -m lstm_vs_rnn.commands.ui` (what `make ui` runs) serves its store, and Debian's Chromium,
driven by Playwright, checks what a person would see: two named configurations with their
stage runs, the headline columns, the comparison, and a training run's loss chart and figures.
Everything is checked by the page's text and elements; screenshots are only for people.

UI_SCREENSHOT_DIR=<dir> puts the screenshots there (`make screenshots` uses docs/screenshots).
"""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import parse_qs, urlsplit

import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from lstm_vs_rnn.commands.ui import headline_metric_keys
from lstm_vs_rnn.params import load_params
from tests.conftest import (
    EDITED_LSTM_HIDDEN_SIZE,
    BuiltPipeline,
    PipelineRepo,
    free_port,
    wait_until_healthy,
)

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1600, "height": 1000}
# Wide enough for every headline column at once (the grid draws only the columns in view).
WIDE_VIEWPORT = {"width": 2600, "height": 1000}
# Tall enough for the whole comparison (run details, parameters, metrics) in one screenshot.
COMPARE_VIEWPORT = {"width": 1600, "height": 1300}
SCREENSHOT_DIR_ENV = "UI_SCREENSHOT_DIR"
EXPERIMENT = "lstm-vs-rnn"
MODELS = ("rnn", "lstm")
# models.lstm.hidden_size of the first and second configuration
HIDDEN_SIZES = ("8", str(EDITED_LSTM_HIDDEN_SIZE))
# The stages with a run (neither entry tunes, so their tune stages log none).
ALL_STAGES = {"generate", "scale", "train@rnn-0", "train@lstm-0", "evaluate"}
# The edit changes only the LSTM, so DVC re-runs only these for the second configuration.
CHANGED_STAGES = {"train@lstm-0", "evaluate"}
EPOCHS = 3  # train.epochs of the tiny params in conftest
REPEATS = 3  # train.repeats of the tiny params in conftest
# The chart search takes a regular expression: just the two curves, not the summaries.
LOSS_CHARTS_SEARCH = "^(train|val)_loss$"
# Page loads on a busy 2-core machine can take a while; these are waits, not time limits.
WAIT_MS = 60_000
SERVER_START_S = 120.0
SERVER_STOP_S = 60.0
RUN_NAME_CELL = "[role=gridcell][col-id='attributes.`Run Name`']"
VERDICT_CELL = "[role=gridcell][col-id='tags.`lstm_vs_rnn.verdict`']"
# The UI shows metric values rounded to 3 decimals in the comparison.
COMPARE_TOLERANCE = 5e-4


@dataclass
class Configuration:
    """A parent run as the store has it: what the page must show for it."""

    run_id: str
    name: str
    hidden_size: str
    metrics: dict[str, float]
    verdict: str


@dataclass
class UiServer:
    """`python -m lstm_vs_rnn.commands.ui` running in its own process group."""

    process: subprocess.Popen[str]
    port: int
    runs_table_url: str
    all_runs_url: str
    log: Path

    def interrupt(self) -> tuple[int, str]:
        """Ctrl-C as a terminal sends it: SIGINT to the whole process group."""
        os.killpg(self.process.pid, signal.SIGINT)
        code = self.process.wait(timeout=SERVER_STOP_S)
        return code, self.log.read_text()


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def default_sigint() -> None:
    """Runs in the child: CI shells start jobs with SIGINT ignored; a terminal does not."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_ui(repo: PipelineRepo, port: int, log: IO[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lstm_vs_rnn.commands.ui", "--port", str(port)],
        cwd=repo.root,
        env={**repo.env, "PYTHONPATH": "src"},
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=default_sigint,
    )


def wait_until_serving(process: subprocess.Popen[str], port: int, log: Path) -> tuple[str, str]:
    """The URLs of the runs table's two views, which the command prints once the server
    answers /health: the configurations, and every run nested under its configuration."""
    deadline = time.monotonic() + SERVER_START_S
    pattern = r"runs table: (\S+)\n  every run, nested under its configuration: (\S+)\n"
    while not (match := re.search(pattern, log.read_text())):
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    wait_until_healthy(f"http://127.0.0.1:{port}", process, log.read_text, timeout=5)
    return match.group(1), match.group(2)


def process_wait(process: subprocess.Popen[str], seconds: float) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=seconds)


def stop_process_group(process: subprocess.Popen[str]) -> None:
    """Whatever the test did: Ctrl-C, then SIGKILL for anything left of the group."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        process_wait(process, SERVER_STOP_S)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def configurations(repo: PipelineRepo) -> list[Configuration]:
    """The parent runs, first configuration first."""
    client = MlflowClient(repo.tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs(
        [experiment.experiment_id],
        "tags.`pipeline.role` = 'configuration'",
        order_by=["attributes.start_time ASC"],
    )
    return [
        Configuration(
            run.info.run_id,
            run.info.run_name,
            run.data.params["models.lstm.hidden_size"],
            run.data.metrics,
            run.data.tags["lstm_vs_rnn.verdict"],
        )
        for run in runs
    ]


def training_run(repo: PipelineRepo, parent: Configuration, stage: str) -> Run:
    client = MlflowClient(repo.tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    (run,) = client.search_runs(
        [experiment.experiment_id],
        f"tags.`mlflow.parentRunId` = '{parent.run_id}' and tags.`dvc.stage` = '{stage}'",
    )
    return run


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="module")
def two_configurations(
    tmp_path_factory: pytest.TempPathFactory, chromium: Path, edited_pipeline: BuiltPipeline
) -> PipelineRepo:
    """`dvc repro`, a bigger LSTM, `dvc repro` again (the shared `edited_pipeline`): two
    configurations in one store."""
    return edited_pipeline.copy_to(tmp_path_factory.mktemp("ui") / "project")


@pytest.fixture(scope="module")
def ui_server(two_configurations: PipelineRepo) -> Iterator[UiServer]:
    port = free_port()
    log = two_configurations.root / "ui.log"
    with log.open("w") as output:
        process = start_ui(two_configurations, port, output)
        try:
            urls = wait_until_serving(process, port, log)
            yield UiServer(process, port, *urls, log)
        finally:
            stop_process_group(process)


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get(SCREENSHOT_DIR_ENV)
    folder = Path(configured).resolve() if configured else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")
    return folder


# --- page helpers -------------------------------------------------------------------------


def open_runs_table(page, url: str, names: list[str]) -> None:
    """The printed URL, with the assistant panel closed so the table has the width."""
    from playwright.sync_api import expect

    page.goto(url)
    for name in names:
        expect(page.locator(RUN_NAME_CELL, has_text=name)).to_be_visible()
    close = page.get_by_role("button", name="Close")
    if close.count():
        close.first.click()


def row_of(page, name: str):
    """The pinned part (checkbox, name) of the table row whose run name is `name`."""
    return page.locator(".ag-pinned-left-cols-container .ag-row").filter(
        has=page.locator(RUN_NAME_CELL).get_by_text(name, exact=True)
    )


def table_names_in_order(page) -> list[str]:
    rows = page.locator(".ag-pinned-left-cols-container .ag-row")
    by_index = {}
    for i in range(rows.count()):
        row = rows.nth(i)
        name = row.locator(f"{RUN_NAME_CELL} a").inner_text().strip()
        by_index[int(row.get_attribute("row-index"))] = name
    return [by_index[index] for index in sorted(by_index)]


def toggle_expanded(page, name: str) -> None:
    row_of(page, name).locator("button[data-component-id*='runnamecellrenderer']").click()


def metric_cell_text(page, run_id: str, metric: str) -> str:
    cell = page.locator(f".ag-center-cols-container .ag-row[row-id='{run_id}']").locator(
        f"[role=gridcell][col-id='metrics.`{metric}`']"
    )
    return cell.inner_text().strip()


def children_by_parent(names: list[str], parents: list[str]) -> dict[str, set[str]]:
    """Rows below a parent, up to the next parent, are the parent's expanded children."""
    grouped: dict[str, set[str]] = {}
    current = None
    for name in names:
        if name in parents:
            current = name
            grouped[name] = set()
        else:
            assert current is not None, f"child row {name!r} above every parent: {names}"
            grouped[current].add(name)
    return grouped


def compare_row(page, header: str) -> list[str]:
    """The values of one row of the comparison's run-details, parameters or tags table."""
    row = page.locator("tr").filter(has=page.locator(".head-value").get_by_text(header, exact=True))
    return [cell.inner_text().strip() for cell in row.locator(".data-value").all()]


# The metrics table is two virtualised grids side by side, names left and values right; a
# value belongs to the name at the same vertical offset, runs are ordered left to right.
METRIC_VALUES_JS = """name => {
    const top = name.parentElement.style.top;
    const values = name.closest('.ReactVirtualized__Grid').parentElement.nextElementSibling;
    return [...values.querySelectorAll('div[style]')]
        .filter(cell => cell.style.top === top && cell.childElementCount === 1)
        .sort((a, b) => parseFloat(a.style.left) - parseFloat(b.style.left))
        .map(cell => cell.innerText.trim());
}"""


# Scrolls the metrics table's grids (names and values scroll together) by one step; false once
# none can scroll further.
SCROLL_METRICS_JS = """link => {
    const table = link.closest('.ReactVirtualized__Grid').parentElement.parentElement;
    let moved = false;
    for (const grid of table.querySelectorAll('.ReactVirtualized__Grid')) {
        const before = grid.scrollTop;
        grid.scrollTop = before + 300;
        moved = moved || grid.scrollTop > before;
    }
    return moved;
}"""


# Nudges the metrics table's grids one row down and back up, so both draw the same rows.
SCROLL_BY_ONE_ROW_JS = """link => {
    const table = link.closest('.ReactVirtualized__Grid').parentElement.parentElement;
    for (const grid of table.querySelectorAll('.ReactVirtualized__Grid')) {
        grid.scrollTop += 30;
        grid.scrollTop -= 30;
    }
}"""


def compare_metric_values(page, key: str) -> list[float]:
    """A metric's values per run; the table draws only the rows in view, so scroll to it."""
    name = page.locator("a[title='Plot chart']").get_by_text(key, exact=True)
    while not name.count():
        if not page.locator("a[title='Plot chart']").first.evaluate(SCROLL_METRICS_JS):
            break
        page.wait_for_timeout(100)
    deadline = time.monotonic() + WAIT_MS / 1000
    while not (values := name.evaluate(METRIC_VALUES_JS)) and time.monotonic() < deadline:
        # The values grid draws its rows a moment after the names, and may lag their scroll.
        name.evaluate(SCROLL_BY_ONE_ROW_JS)
        page.wait_for_timeout(200)
    return [float(text) for text in values]


def loss_chart(page, metric: str):
    """A chart card of the run page's model-metrics tab, found by its title."""
    title = page.locator(f"h4[title='{metric}']")
    return title.locator("xpath=ancestor::div[contains(@class,'react-resizable')][1]")


# --- the tests ----------------------------------------------------------------------------


def test_ui_refuses_a_port_in_use_with_one_line(pipeline_repo: PipelineRepo) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = pipeline_repo.run(
            sys.executable, "-m", "lstm_vs_rnn.commands.ui", "--port", str(port),
            check=False, env={"PYTHONPATH": "src"}, timeout=120,
        )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: port {port} on 127.0.0.1 is not available (Address already in use); "
        f"stop what uses it or pick another, e.g. 'make ui PORT={port + 1}'"
    ]


def test_comparing_runs_in_the_mlflow_ui(
    two_configurations: PipelineRepo, ui_server: UiServer, page, screenshots: Path
) -> None:
    from playwright.sync_api import expect

    first, second = configurations(two_configurations)
    names = [first.name, second.name]

    # 1. `make ui` prints the runs table of the experiment, model-training mode, headline view,
    # and the same columns over every run.
    for url, view in (
        (ui_server.runs_table_url, "headline-metrics"),
        (ui_server.all_runs_url, "all-runs"),
    ):
        assert re.fullmatch(
            rf"http://127\.0\.0\.1:{ui_server.port}/#/experiments/\d+/runs"
            rf"\?workflowType=machine_learning&viewStateShareKey={view}",
            url,
        ), url

    # 2. The two configurations' parent rows and nothing else, with names a person can read
    # (the view's search: the first page of 100 runs holds every configuration).
    assert [first.hidden_size, second.hidden_size] == list(HIDDEN_SIZES)
    for name, size in zip(names, HIDDEN_SIZES, strict=True):
        assert f"lstm h{size}x1" in name and not re.fullmatch(r"[0-9a-f]{32}", name), name
    open_runs_table(page, ui_server.runs_table_url, names)
    assert table_names_in_order(page) == [second.name, first.name]
    expect(page).to_have_url(re.compile("searchFilter="))
    query = parse_qs(urlsplit(page.url).fragment.split("?", 1)[1])
    assert query["searchFilter"] == ["tags.`pipeline.role` = 'configuration'"]

    # 4. The headline columns are there without anyone picking them, with the stored values:
    # each model's mean test RMSE over repeats and its interval, the paired difference, the
    # baselines, and the verdict.
    page.set_viewport_size(WIDE_VIEWPORT)
    keys = headline_metric_keys(load_params(two_configurations.root / "params.yaml"))
    assert {"lstm.test_rmse.ci95_low", "lstm_vs_rnn.rmse_diff.mean", "ar.test_rmse"} <= set(keys)
    for key in keys:
        header = page.locator(f"[role=columnheader][col-id='metrics.`{key}`']")
        expect(header).to_contain_text(key)
        for config in (first, second):
            shown = float(metric_cell_text(page, config.run_id, key))
            assert shown == pytest.approx(config.metrics[key], rel=1e-9), key
    for config in (first, second):
        verdict = page.locator(f".ag-center-cols-container .ag-row[row-id='{config.run_id}']")
        expect(verdict.locator(VERDICT_CELL)).to_have_text(config.verdict)
    page.screenshot(path=screenshots / "headline_columns.png")
    page.set_viewport_size(VIEWPORT)

    # 3a. Compare the two parents: the changed parameter and both models' test metrics.
    expect(page.locator(RUN_NAME_CELL)).to_have_count(2)
    for name in names:
        row_of(page, name).locator("input.ag-checkbox-input").check()
    page.get_by_role("button", name="Compare", exact=True).click()
    expect(page.get_by_text("Comparing 2 Runs from 1 Experiment")).to_be_visible()
    order = compare_row(page, "Run ID:")
    assert sorted(order) == sorted([first.run_id, second.run_id])
    by_id = {first.run_id: first, second.run_id: second}
    columns = [by_id[run_id] for run_id in order]
    expect(page.locator("th").get_by_text("models.lstm.hidden_size", exact=True)).to_be_visible()
    assert compare_row(page, "models.lstm.hidden_size") == [
        config.hidden_size for config in columns
    ]
    # In the table's (alphabetical) order: it draws only the rows in view and scrolls down.
    for key in ("lstm.test_rmse.mean", "lstm_vs_rnn.rmse_diff.mean", "rnn.test_rmse.mean"):
        expected = [config.metrics[key] for config in columns]
        shown = compare_metric_values(page, key)
        assert shown == pytest.approx(expected, abs=COMPARE_TOLERANCE), key
    page.get_by_role("switch", name="Parameters - Show diff only").click()
    expect(page.locator("th").get_by_text("data.n_points", exact=True)).to_have_count(0)
    page.get_by_text("Visualizations", exact=True).click()  # fold the plots away
    page.set_viewport_size(COMPARE_VIEWPORT)
    page.screenshot(path=screenshots / "compare.png")
    page.set_viewport_size(VIEWPORT)

    # 3b. The view of every run: each configuration expands into its stage runs, the new
    # configuration's LSTM training run into one run per repeat; each repeat's run holds its
    # loss per epoch.
    open_runs_table(page, ui_server.all_runs_url, names)
    for name in names:
        toggle_expanded(page, name)
    expect(page.locator(RUN_NAME_CELL)).to_have_count(2 + len(ALL_STAGES) + len(CHANGED_STAGES))
    grouped = children_by_parent(table_names_in_order(page), names)
    assert grouped == {first.name: ALL_STAGES, second.name: CHANGED_STAGES}
    page.evaluate("document.activeElement.blur()")  # no focus frame in the screenshot
    page.screenshot(path=screenshots / "runs_table.png")
    toggle_expanded(page, first.name)
    train = training_run(two_configurations, second, "train@lstm-0")
    toggle_expanded(page, "train@lstm-0")
    repeats = [f"lstm · repeat {repeat} · seed {42 + repeat}" for repeat in range(REPEATS)]
    for name in repeats:
        expect(row_of(page, name)).to_have_count(1)
    page.evaluate("document.activeElement.blur()")
    page.screenshot(path=screenshots / "repeat_runs.png")
    row_of(page, repeats[0]).locator("a").first.click()
    expect(page.get_by_role("heading", name=repeats[0])).to_be_visible()
    expect(page.get_by_role("link", name="train@lstm-0")).to_be_visible()  # its parent run
    page.get_by_role("tab", name="Model metrics").click()
    page.get_by_placeholder("Search metric charts").fill(LOSS_CHARTS_SEARCH)
    for metric in ("train_loss", "val_loss"):
        chart = loss_chart(page, metric)
        expect(chart.locator("g.trace.scatter path.point")).to_have_count(EPOCHS)
        expect(chart.locator("text.xtitle")).to_have_text("Step")
    expect(page.locator("h4[title='best_val_loss']")).to_have_count(0)  # the search applied
    page.screenshot(path=screenshots / "training_run.png")

    # 3c. The stage run's artifacts: the loss figure (median and band over repeats).
    page.goto(ui_server.runs_table_url.split("/runs?")[0] + f"/runs/{train.info.run_id}")
    expect(page.get_by_role("heading", name="train@lstm-0")).to_be_visible()
    page.get_by_role("tab", name="Artifacts").click()
    page.get_by_text("figures", exact=True).click()
    page.get_by_text("loss_lstm.png", exact=True).click()
    expect(page.get_by_text("figures/loss_lstm.png", exact=True)).to_be_visible()
    image = page.locator("img[src^='blob:']").first
    expect(image).to_be_visible()
    assert image.evaluate("img => img.complete && img.naturalWidth") > 0
    page.screenshot(path=screenshots / "training_run_artifacts.png")

    # 1 again. Ctrl-C stops the UI cleanly and frees the port.
    code, log = ui_server.interrupt()
    assert code == 0, log
    assert log.rstrip().endswith("MLflow UI stopped."), log
    assert port_is_free(ui_server.port)
