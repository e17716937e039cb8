"""Start the MLflow UI for the project's store on 127.0.0.1 and print the runs table's URL.

Usage: `PYTHONPATH=src python -m lstm_vs_rnn.commands.ui [--port 5000] [--host 127.0.0.1]`
(`make ui`).

The printed URL opens the experiment's runs table in model-training mode with the saved view
"Headline metrics" (see `save_project_views`): every configuration's parent run, and only
those, so all of them are on the first page and comparable at once, with each model's mean
test RMSE over repeats with its 95% interval, each pair's paired difference and verdict, and
the persistence and AR baselines as columns, without anyone picking them in the Columns menu.
A second URL opens the same columns over every run, the stage and repeat runs nested under
their configuration ("All runs"). They are printed once the server answers, so they work when
clicked. The server logs its errors, not every request.

The UI shows a saved view under the banner "You're viewing a shared view": MLflow 3.17 keeps a
person's own layout in their browser's localStorage, which no server response or URL can
write; *Override saved view* makes the view their own in one click.

The server runs in its own session (see `mlflow_server`): a terminal's Ctrl-C reaches only this
process, which stops the server and prints one line, rather than the server's own shutdown
tracebacks.
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from typing import TYPE_CHECKING, Any

from lstm_vs_rnn.commands.mlflow_server import MlflowServer, ensure_port_free, server_command
from lstm_vs_rnn.entry_point import run_entry_point
from lstm_vs_rnn.errors import UserError, redact
from lstm_vs_rnn.evaluation.statistics import model_pairs
from lstm_vs_rnn.params import Params, load_params
from lstm_vs_rnn.paths import PATHS
from lstm_vs_rnn.tracking.store import (
    connect,
    experiment_name,
    local_artifacts_dir,
    tracking_uri,
)
from lstm_vs_rnn.tracking.tags import ROLE_TAG

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

# The MLflow UI (3.x) lists experiment tags with this prefix under "Views" and opens one when
# the runs table's URL carries `viewStateShareKey=<id>`; the tag is what its "Save view" writes.
SAVED_VIEW_TAG_PREFIX = "mlflow.sharedViewState."
HEADLINE_VIEW_ID = "headline-metrics"
HEADLINE_VIEW_NAME = "Headline metrics"
ALL_RUNS_VIEW_ID = "all-runs"
ALL_RUNS_VIEW_NAME = "All runs"
# The headline view's search: the configurations' parent runs only. The UI fetches runs 100 at
# a time, newest first, and a configuration has dozens (stages, repeats, trials): unfiltered,
# the first page holds about one configuration.
CONFIGURATIONS_FILTER = f"tags.`{ROLE_TAG}` = 'configuration'"
# Test metrics that evaluate logs to every configuration's parent run besides the models'.
BASELINES = ("persistence", "ar")
BASELINE_METRIC = "test_rmse"
# Each model's mean test RMSE over repeats with its 95% interval; each pair's paired difference.
MODEL_STATISTICS = ("test_rmse.mean", "test_rmse.ci95_low", "test_rmse.ci95_high")
PAIR_STATISTICS = ("rmse_diff.mean", "rmse_diff.ci_low", "rmse_diff.ci_high")
RUN_NAME_COLUMN = "attributes.`Run Name`"
# Column ids of the attributes shown before the metrics, as the UI names them.
ATTRIBUTE_COLUMNS = ("runDateAndNestInfo", "duration")
# Wide enough for a whole configuration name such as "rnn h50x1 · lstm h64x1 · 20ep ...".
RUN_NAME_WIDTH_PX = 420
METRIC_WIDTH_PX = 130
# `mlflow server` answers after 4-5 s on an idle 2-core machine and 10-20 s on a busy one.
START_TIMEOUT_S = 180.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind; the default keeps the UI on this machine",
    )
    return parser.parse_args()


def metric_column(key: str) -> str:
    """A metric's column id in the runs table (the UI's canonical sort key)."""
    return f"metrics.`{key}`"


def tag_column(key: str) -> str:
    """A tag's column id in the runs table."""
    return f"tags.`{key}`"


def headline_metric_keys(params: Params) -> list[str]:
    """The parent-run metrics the headline view shows, in column order."""
    pairs = [f"{first}_vs_{second}" for first, second in model_pairs(list(params.models))]
    return [
        *(f"{name}.{statistic}" for name in params.models for statistic in MODEL_STATISTICS),
        *(f"{pair}.{statistic}" for pair in pairs for statistic in PAIR_STATISTICS),
        *(f"{name}.{BASELINE_METRIC}" for name in BASELINES),
    ]


def headline_view_state(params: Params, search_filter: str = "") -> dict[str, Any]:
    """Runs-table layout: duration, every model's mean test RMSE over repeats with its 95%
    interval, each pair's paired difference and verdict, and the baselines; the runs that
    match `search_filter` (the UI's search box; "" for every run).

    Sort order is left at the default (newest first): sorting by a metric would flatten the
    table, and the parent rows must stay expandable into their stage runs.
    """
    metrics = [metric_column(key) for key in headline_metric_keys(params)]
    verdicts = [
        tag_column(f"{first}_vs_{second}.verdict")
        for first, second in model_pairs(list(params.models))
    ]
    columns = [*metrics, *verdicts]
    return {
        "searchFilter": search_filter,
        "selectedColumns": ["attributes.`Duration`", *columns],
        "columnOrder": [RUN_NAME_COLUMN, *ATTRIBUTE_COLUMNS, *columns],
        "columnWidths": {RUN_NAME_COLUMN: RUN_NAME_WIDTH_PX}
        | {column: METRIC_WIDTH_PX for column in columns},
    }


def save_project_views(client: MlflowClient, experiment_id: str, params: Params) -> None:
    """Store the experiment's saved views: "Headline metrics" (the configurations' parent
    runs) and "All runs" (every run, nested under its configuration), with the same columns."""
    save_view(
        client,
        experiment_id,
        HEADLINE_VIEW_ID,
        HEADLINE_VIEW_NAME,
        headline_view_state(params, CONFIGURATIONS_FILTER),
    )
    save_view(
        client, experiment_id, ALL_RUNS_VIEW_ID, ALL_RUNS_VIEW_NAME, headline_view_state(params)
    )


def save_view(
    client: MlflowClient, experiment_id: str, view_id: str, name: str, view: dict[str, Any]
) -> None:
    """Store `view` as the experiment's saved view `view_id`; rewrite it only if it changed.

    The value is the envelope the UI's own "Save view" writes: name, times and the view state
    as a JSON string.
    """
    key = SAVED_VIEW_TAG_PREFIX + view_id
    state = json.dumps(view, sort_keys=True)
    old = _saved_view(client, experiment_id, key)
    if old.get("state") == state and old.get("name") == name:
        return
    now = int(time.time() * 1000)
    envelope = {
        "name": name,
        "createdAt": old.get("createdAt", now),
        "updatedAt": now,
        "state": state,
    }
    client.set_experiment_tag(experiment_id, key, json.dumps(envelope))


def _saved_view(client: MlflowClient, experiment_id: str, key: str) -> dict[str, Any]:
    raw = client.get_experiment(experiment_id).tags.get(key)
    try:
        value = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def runs_table_urls(base: str, params: Params) -> tuple[str, str]:
    """The runs table in model-training mode with the headline view, and with the view of all
    runs; `base` twice if there are no runs yet."""
    client = connect()
    experiment = client.get_experiment_by_name(experiment_name(params))
    if experiment is None:
        note = f"{base}  (no runs yet: 'make run' first, then reload)"
        return note, note
    save_project_views(client, experiment.experiment_id, params)
    runs = f"{base}/#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning"
    return (
        f"{runs}&viewStateShareKey={HEADLINE_VIEW_ID}",
        f"{runs}&viewStateShareKey={ALL_RUNS_VIEW_ID}",
    )


def ui_server(uri: str, host: str, port: int) -> MlflowServer:
    """`mlflow server` on the SQLite store, printing to this terminal; new experiments'
    artifacts go beside the store.

    Experiments the pipeline creates carry their own file:// artifact location, which the
    server reads directly; the destination only matters for experiments made in the UI, and
    must not depend on the directory `make ui` was started from.
    """
    artifacts = local_artifacts_dir(uri)
    assert artifacts is not None, "the UI serves a SQLite store"
    command = server_command(uri, artifacts, host, port, options=("--registry-store-uri", uri))
    return MlflowServer(command, f"http://{host}:{port}")


def serve(uri: str, host: str, port: int, urls: tuple[str, str]) -> None:
    """Run the server until Ctrl-C (or SIGTERM), then stop it and say so in one line."""
    print(f"MLflow UI for {uri}: starting the server ...", flush=True)
    server = ui_server(uri, host, port)
    try:
        server.start(START_TIMEOUT_S)
        configurations, every_run = urls
        print(
            f"  runs table: {configurations}\n"
            f"  every run, nested under its configuration: {every_run}\n"
            "  Ctrl-C stops it.",
            flush=True,
        )
        code = server.wait()
    except KeyboardInterrupt:
        code = None
    finally:
        # A second Ctrl-C or a SIGTERM while it stops must not orphan it.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        server.stop()
    if code is None:
        print("MLflow UI stopped.", flush=True)
        return
    raise UserError(f"the MLflow server exited with code {code}; its messages are above")


def main() -> None:
    args = parse_args()
    params = load_params(PATHS.params)
    uri = tracking_uri()
    if not uri.startswith("sqlite:///"):
        raise UserError(
            f"MLFLOW_TRACKING_URI is {redact(uri)}: that server has its own UI; "
            f"open it in a browser (this command serves the local SQLite store)"
        )
    ensure_port_free(args.host, args.port, f"make ui PORT={args.port + 1}")
    urls = runs_table_urls(f"http://{args.host}:{args.port}", params)
    serve(uri, args.host, args.port, urls)


if __name__ == "__main__":
    run_entry_point(main, on_interrupt="interrupted: the MLflow UI was not started")
