"""Retiring a duplicate parent run: only "another stage already deleted it" is not an error,
and only a write that lost a race to an identical one is retried."""

from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from lstm_vs_rnn.tracking.parents import retire_duplicate
from lstm_vs_rnn.tracking.records import write_concurrently
from lstm_vs_rnn.tracking.tags import MERGED_TAG


@pytest.fixture
def client(sqlite_store: str) -> MlflowClient:
    """A client of a new SQLite store at tmp_path/mlflow.db."""
    return MlflowClient(tracking_uri=sqlite_store)


def test_a_duplicate_is_tagged_and_deleted(client: MlflowClient) -> None:
    experiment = client.create_experiment("parents")
    canonical, duplicate = (client.create_run(experiment).info.run_id for _ in range(2))
    retire_duplicate(client, duplicate, canonical)
    run = client.get_run(duplicate)
    assert run.data.tags[MERGED_TAG] == canonical
    assert run.info.lifecycle_stage == "deleted"


def test_a_duplicate_another_stage_already_deleted_is_not_an_error(client: MlflowClient) -> None:
    experiment = client.create_experiment("parents")
    canonical, duplicate = (client.create_run(experiment).info.run_id for _ in range(2))
    client.delete_run(duplicate)  # set_tag on a deleted run raises in MLflow
    retire_duplicate(client, duplicate, canonical)
    assert client.get_run(duplicate).info.lifecycle_stage == "deleted"


def test_any_other_failure_is_raised_and_the_duplicate_is_kept(
    client: MlflowClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MLflow makes the artifact root beside the database path, here "file:/tmp/...": relative,
    # so the test runs in its own folder rather than leaving that folder in the checkout.
    monkeypatch.chdir(tmp_path)
    experiment = client.create_experiment("parents")
    canonical, duplicate = (client.create_run(experiment).info.run_id for _ in range(2))
    # The same store opened read-only: the tag cannot be written, the run is not deleted.
    read_only = MlflowClient(f"sqlite:///file:{tmp_path / 'mlflow.db'}?mode=ro&uri=true")
    with pytest.raises(MlflowException, match="readonly"):
        retire_duplicate(read_only, duplicate, canonical)
    assert client.get_run(duplicate).info.lifecycle_stage == "active"


def test_a_tag_write_that_lost_a_race_is_retried_and_any_other_refusal_raised(
    client: MlflowClient,
) -> None:
    """Two machines merging one duplicate write the same new tag at once; the loser's store
    answers with a duplicate key (PostgreSQL: UniqueViolation). That write is retried."""
    experiment = client.create_experiment("parents")
    run_id = client.create_run(experiment).info.run_id
    answers = [MlflowException('(psycopg.errors.UniqueViolation) duplicate key "tag_pk"')]

    def tag_write() -> None:
        if answers:
            raise answers.pop()
        client.set_tag(run_id, "merged", "yes")

    write_concurrently(tag_write)
    assert client.get_run(run_id).data.tags["merged"] == "yes"

    def refused() -> None:
        raise MlflowException("INVALID_PARAMETER_VALUE: tag value too long")

    with pytest.raises(MlflowException, match="too long"):
        write_concurrently(refused)
