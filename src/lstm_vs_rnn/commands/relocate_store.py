"""`make relocate-store`: point a moved or copied project's MLflow store at its own artifacts.

MLflow writes absolute paths into a store: each experiment's artifact location (fixed when it
is created), each run's artifact URI and each logged model's location. After the project
folder is moved or copied (with `mlflow.db` and `mlartifacts/`), they still name the old
folder, so a stage refuses to log there (tracking.store.check_artifacts_beside_store). This
rewrites every path under the old folder to the same path under the store's own folder, in
one SQLite transaction under the store's lock, and prints one line saying what it changed.
Old runs' artifacts then load from the copy; the old folder can be deleted.

Usage: `PYTHONPATH=src python -m lstm_vs_rnn.commands.relocate_store` (`make relocate-store`).
"""

import sqlite3
from contextlib import closing
from pathlib import Path

from lstm_vs_rnn.entry_point import run_entry_point
from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.tracking.store import (
    ARTIFACTS_DIR,
    local_artifacts_dir,
    local_artifacts_path,
    sqlite_database,
    store_lock,
    tracking_uri,
)

# The columns of MLflow's schema that hold artifact paths (the registry's two included).
ARTIFACT_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
)


def folders_made_in(connection: sqlite3.Connection, home: Path) -> set[Path]:
    """The project folders other than `home` whose `mlartifacts/` an experiment of the store
    keeps its artifacts in."""
    found = set()
    for (location,) in connection.execute("select artifact_location from experiments"):
        path = local_artifacts_path(location or "")
        if path is not None and path.name == ARTIFACTS_DIR and path.parent != home:
            found.add(path.parent)
    return found


def relocate(database: Path, old: Path, new: Path) -> int:
    """Rewrite every artifact path under folder `old` (a file:// URI or a plain path) to the
    same path under `new` in the SQLite store `database`; return the number of values changed.

    One transaction: a failure changes nothing. Tables and columns the store's schema lacks
    are skipped.
    """
    prefixes = [(old.as_uri() + "/", new.as_uri() + "/"), (f"{old}/", f"{new}/")]
    changed = 0
    with closing(sqlite3.connect(database)) as connection, connection:
        present = _columns(connection)
        for table, column in ARTIFACT_COLUMNS:
            if column not in present.get(table, set()):
                continue
            for before, after in prefixes:
                cursor = connection.execute(
                    f'update "{table}" set "{column}" = ? || substr("{column}", ?) '
                    f'where substr("{column}", 1, ?) = ?',
                    (after, len(before) + 1, len(before), before),
                )
                changed += cursor.rowcount
    return changed


def _columns(connection: sqlite3.Connection) -> dict[str, set[str]]:
    tables = [name for (name,) in connection.execute("select name from sqlite_master")]
    return {
        table: {row[1] for row in connection.execute(f"pragma table_info('{table}')")}
        for table in tables
    }


def main() -> None:
    uri = tracking_uri()
    database, artifacts = sqlite_database(uri), local_artifacts_dir(uri)
    if database is None or artifacts is None:
        raise UserError(
            "MLFLOW_TRACKING_URI names a tracking server, which keeps its own artifacts: "
            "nothing to relocate (unset it for the project's local store)"
        )
    if not database.exists():
        raise UserError(f"no MLflow store at {database}: nothing to relocate")
    home = artifacts.parent
    with store_lock():
        with closing(sqlite3.connect(database)) as connection:
            elsewhere = folders_made_in(connection, home)
        if not elsewhere:
            print(f"the MLflow store {database} keeps its artifacts beside it in {artifacts}")
            return
        if not artifacts.is_dir():
            old = sorted(elsewhere)[0] / ARTIFACTS_DIR
            raise UserError(
                f"{artifacts} does not exist: copy the store's artifacts ({old}) there first, "
                f"then re-run"
            )
        changed = sum(relocate(database, old, home) for old in sorted(elsewhere))
    print(
        f"the MLflow store {database} now keeps its artifacts in {artifacts}: {changed} paths "
        f"rewritten from {', '.join(str(old) for old in sorted(elsewhere))}"
    )


if __name__ == "__main__":
    run_entry_point(main)
