"""`make compare`: DVC experiments side by side in a table that fits a terminal.

`dvc exp show` prints every metric, param and dependency hash (65 to 120 columns, up to 3,100
characters wide here), which no terminal shows. This keeps each model's headline test RMSE, the
mean difference of each primary pair (`evaluate.primary`, the pairs the run's verdicts are
about) and the params that differ between the rows, drops file dependencies and every other
metric, and puts each column's name on two lines (`lstm` over `test_rmse`), so a baseline and a
handful of experiments that each change a param or two fit in 100 columns for a few entries.
An exploratory pair's mean difference is that of its two test RMSE columns when every repeat
finished, so it is left to reports/claims.md. The baselines' test RMSE (persistence, noise
floor, ...) appears only where it differs between rows: when data changed.

The columns are chosen by pattern, so new metrics of the same shape (`lstm.test_rmse.mean`,
`lstm_vs_rnn.rmse_diff.mean`) are picked up and their companions (`.std`, `.ci95_low`) left
out; a mean over seeds shares its column with the single-seed value (`lstm` over `test_rmse`).
The same selection with DVC's own table: the `dvc exp show` command in `exp_show_command`
(the models are those under `models:` in params.yaml).

Below the table, for each entry that tunes, the settings its tuning chose in each row
(`tuning/fold_0/<entry>.json`, a DVC output: read from the workspace, and for an experiment from
DVC's cache with `dvc.api.read`), one line per row and entry in `key=value` form, as
`dvc params diff` names them.

Usage: `PYTHONPATH=src python -m lstm_vs_rnn.commands.experiments_table [dvc exp show options,
e.g. -A]` (`make compare`).
"""

import csv
import io
import json
import re
import subprocess
import sys
import textwrap
from typing import Any

from lstm_vs_rnn.entry_point import run_entry_point
from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.params import Params, load_params
from lstm_vs_rnn.paths import PATHS, ProjectPaths

PARAM_SECTIONS = ("data", "train", "models", "evaluate", "tracking")
# Headline metrics, of models and baselines alike: `<name>.test_rmse` for one seed,
# `<name>.test_rmse.mean` over repeated training, and `<a>_vs_<b>.rmse_diff.mean`.
HEADLINE = r"[^./]+\.(test_rmse(\.mean)?|rmse_diff\.mean)$"
MEAN_SUFFIX = ".mean"
LABEL_COLUMNS = ("Experiment", "rev", "typ", "State")
EXPERIMENT_TYPES = ("branch_commit", "branch_base")
MISSING = "-"
GAP = "  "
# The width the chosen settings are wrapped to (the table itself fits it for a few entries).
TERMINAL_COLUMNS = 100


def primary_pairs(params: Params) -> list[str]:
    """The metric names (`<first>_vs_<second>`) of the `evaluate.primary` pairs whose entries
    are both under `models:`, as evaluate names them."""
    return [
        f"{first}_vs_{second}"
        for first, second in params.evaluate.primary
        if first in params.models and second in params.models
    ]


def _any_of(names: list[str]) -> str:
    """A regex alternation matching any of `names` literally."""
    return "|".join(re.escape(name) for name in names)


def drop_pattern(pairs: list[str]) -> str:
    """`--drop` (matched at the start of a column name): anything that is neither a param, a
    test RMSE nor a primary pair's difference, i.e. the other metrics, the file dependencies and
    the creation time."""
    params = "|".join(PARAM_SECTIONS)
    return rf"(?!({params})\.|[^./]+\.test_rmse(\.mean)?$|({_any_of(pairs)})\.rmse_diff\.mean$)"


def keep_pattern(models: list[str], pairs: list[str]) -> str:
    """`--keep` protects columns from `--only-changed` and `--drop`: the row labels, each
    model's test RMSE and the primary pairs' differences, shown even where every row agrees."""
    return (
        rf"Experiment$|rev$|typ$|State$|({_any_of(models)})\.test_rmse(\.mean)?$"
        rf"|({_any_of(pairs)})\.rmse_diff\.mean$"
    )


def exp_show_command(models: list[str], pairs: list[str], *extra: str) -> list[str]:
    """`dvc exp show` with the selection above."""
    drop, keep = drop_pattern(pairs), keep_pattern(models, pairs)
    return ["dvc", "exp", "show", "--only-changed", "--drop", drop, "--keep", keep, *extra]


def read_experiments(models: list[str], pairs: list[str], extra: list[str]) -> list[dict[str, str]]:
    """The selected columns of `dvc exp show`, one dict per row."""
    try:
        result = subprocess.run(
            exp_show_command(models, pairs, "--csv", *extra),
            cwd=PATHS.root,
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        raise UserError(
            "dvc is not on PATH: activate the environment (source .venv/bin/activate) "
            "or run 'make compare'"
        ) from None
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or [f"exit {result.returncode}"]
        raise UserError(f"'dvc exp show' failed: {lines[-1]}")
    return list(csv.DictReader(io.StringIO(result.stdout)))


def merge_means(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """`lstm.test_rmse.mean` (over seeds) and `lstm.test_rmse` (one seed) in one column.

    Both are the configuration's test RMSE; rows from before and after training was repeated
    then share a column instead of each leaving the other's empty.
    """
    merged = []
    for row in rows:
        out: dict[str, str] = {}
        for column, value in row.items():
            key = column.removesuffix(MEAN_SUFFIX) if is_headline(column) else column
            out[key] = out.get(key) or value
        merged.append(out)
    columns = {key: None for row in merged for key in row}
    return [{key: row.get(key, "") for key in columns} for row in merged]


def is_headline(column: str) -> bool:
    return re.match(HEADLINE, column) is not None


def is_param(column: str) -> bool:
    return column.startswith(tuple(f"{section}." for section in PARAM_SECTIONS))


def varies(rows: list[dict[str, str]], column: str) -> bool:
    """Whether the rows that have a value disagree (queued rows have none yet)."""
    return len({row[column] for row in rows if row[column]}) > 1


def value_columns(rows: list[dict[str, str]], models: list[str], pairs: list[str]) -> list[str]:
    """The models' test RMSE and the primary pairs' differences always; params and baselines
    where rows differ.

    DVC's `--only-changed` counts an empty cell as a difference, so a queued experiment would
    bring back every baseline column; this does not.
    """
    always = {f"{model}.test_rmse" for model in models} | {f"{pair}.rmse_diff" for pair in pairs}
    return [
        column
        for column in rows[0]
        if column not in LABEL_COLUMNS and (column in always or varies(rows, column))
    ]


def row_label(row: dict[str, str]) -> str:
    """`workspace`, the baseline commit's name, or an indented experiment name."""
    if row.get("typ") in EXPERIMENT_TYPES:
        return f"  {row.get('Experiment') or row['rev']}"
    return row["rev"]


def cell(column: str, value: str) -> str:
    if not value:
        return MISSING
    if is_param(column):
        return value
    try:
        return f"{float(value):.4f}"
    except ValueError:
        return value


def header(column: str) -> tuple[str, str]:
    """A column name on two lines, split at its first dot: `lstm` over `test_rmse`."""
    first, _, rest = column.partition(".")
    return first, rest


def format_table(rows: list[dict[str, str]], models: list[str], pairs: list[str]) -> str:
    """Left-aligned labels, params and state; right-aligned metrics; two-line headers."""
    columns = value_columns(rows, models, pairs)
    state = ["state"] if any(row.get("State") for row in rows) else []
    table = [
        ["experiment", *(header(column)[0] for column in columns), *state],
        ["", *(header(column)[1] for column in columns), *("" for _ in state)],
    ]
    for row in rows:
        values = [cell(column, row[column]) for column in columns]
        table.append([row_label(row), *values, *(row.get("State", "") for _ in state)])
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    right = [False, *(not is_param(column) for column in columns), *(False for _ in state)]
    return "\n".join(
        GAP.join(
            text.rjust(width) if align else text.ljust(width)
            for text, width, align in zip(line, widths, right, strict=True)
        ).rstrip()
        for line in table
    )


def chosen_settings(paths: ProjectPaths, entry: str, row: dict[str, str]) -> dict[str, Any]:
    """The `chosen` settings in tuning/fold_0/<entry>.json of `row`: the workspace's file, or a
    commit's or experiment's from DVC's cache; empty where the row has none (queued, failed,
    from before the entry tuned, or not in the local cache)."""
    path = paths.tuning_result(entry)
    if row["rev"] == "workspace":
        return json.loads(path.read_text(encoding="utf-8"))["chosen"] if path.exists() else {}
    if row.get("State") in ("Queued", "Running", "Failed"):
        return {}
    import dvc.api
    from dvc.exceptions import DvcException

    relative = path.relative_to(paths.root).as_posix()
    try:
        return json.loads(dvc.api.read(relative, repo=str(paths.root), rev=row["rev"]))["chosen"]
    except (DvcException, FileNotFoundError):
        return {}


def setting_text(value: Any) -> str:
    """A chosen value as params.yaml writes it: null, or a number to 4 significant digits."""
    if value is None:
        return "null"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def format_chosen(rows: list[dict[str, str]], entries: list[str], paths: ProjectPaths) -> str:
    """One line per row and tuned entry: `<row>  <entry>  key=value ...`; empty without
    tuned entries."""
    lines = []
    for row in rows:
        for entry in entries:
            chosen = chosen_settings(paths, entry, row)
            if chosen:
                settings = " ".join(
                    f"{key}={setting_text(value)}" for key, value in sorted(chosen.items())
                )
                lines.append([row_label(row), entry, settings])
    if not lines:
        return ""
    widths = [max(len(line[i]) for line in lines) for i in range(2)]
    indent = " " * (widths[0] + widths[1] + 2 * len(GAP))
    body = [
        textwrap.fill(
            text,
            width=TERMINAL_COLUMNS,
            initial_indent=f"{label.ljust(widths[0])}{GAP}{entry.ljust(widths[1])}{GAP}",
            subsequent_indent=indent,
        )
        for label, entry, text in lines
    ]
    return "\n".join(["settings each tuned entry trains at (tuning/fold_0/<entry>.json):", *body])


def main() -> None:
    params = load_params(PATHS.params)
    models, pairs = list(params.models), primary_pairs(params)
    rows = read_experiments(models, pairs, sys.argv[1:])
    if not rows:
        raise UserError("'dvc exp show' listed nothing: run 'make run' or 'dvc exp run' first")
    print(format_table(merge_means(rows), models, pairs))
    chosen = format_chosen(rows, params.tuned_entries(), PATHS)
    if chosen:
        print(f"\n{chosen}")


if __name__ == "__main__":
    run_entry_point(main, on_interrupt="interrupted")
