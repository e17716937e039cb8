"""`make teammate NAME=alice`: add a user to a team server started with `make server AUTH=1`
and let them log to the project's experiment.

Run by an admin: MLFLOW_TRACKING_URI points at the server, MLFLOW_TRACKING_USERNAME and
MLFLOW_TRACKING_PASSWORD are the admin's. The new user's password comes from
TEAMMATE_PASSWORD, or is asked for. The experiment (MLFLOW_EXPERIMENT_NAME, else
`tracking.experiment_name` in params.yaml) is created if it does not exist yet.

Why a grant is needed: the basic-auth app gives every other user READ by default, and the
user who creates an experiment owns it, so a teammate's first stage would get 403 on it.
EDIT lets them create runs, log to them, and end runs in it (which the stale-run sweep does).
The same for the Model Registry: the first user to register an entry's model owns that
registered model, so the grant also gives EDIT on the server's registered models (MLflow grants
them by name or all at once, and the names of entries added later are not known here): a
teammate adds versions and moves aliases, deleting a registered model stays its owner's.
"""

from __future__ import annotations

import argparse
import getpass
import os
from typing import TYPE_CHECKING

from lstm_vs_rnn.entry_point import run_entry_point
from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.params import load_params
from lstm_vs_rnn.paths import PATHS
from lstm_vs_rnn.tracking.store import connect, experiment_name, get_or_create_experiment

if TYPE_CHECKING:
    from mlflow.server.auth.client import AuthServiceClient

PASSWORD_ENV = "TEAMMATE_PASSWORD"
PERMISSION = "EDIT"


def new_user_password(name: str) -> str:
    password = os.environ.get(PASSWORD_ENV) or getpass.getpass(f"password for {name}: ")
    if not password:
        raise UserError(f"no password for {name}: set {PASSWORD_ENV} or type one at the prompt")
    return password


def add_teammate(name: str, password: str) -> str:
    """Create the user unless they exist, grant EDIT on the experiment and the registered
    models; return the experiment's name."""
    from mlflow.exceptions import MlflowException
    from mlflow.server import get_app_client

    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri.startswith(("http://", "https://")):
        raise UserError("MLFLOW_TRACKING_URI must point at the team server (http://...)")
    client = connect()
    experiment = experiment_name(load_params(PATHS.params))
    experiment_id = get_or_create_experiment(client, experiment)
    auth = get_app_client("basic-auth", tracking_uri=uri)
    try:
        auth.create_user(name, password)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise UserError(f"cannot add user {name}: {exc.message}") from None
    grant(auth, name, "experiment", experiment_id)
    grant(auth, name, "registered_model", "*")
    return experiment


def grant(auth: AuthServiceClient, name: str, resource_type: str, resource_id: str) -> None:
    """Give user `name` PERMISSION on the resource, replacing a grant they already have on it
    (MLflow refuses a second grant with RESOURCE_ALREADY_EXISTS and has no update)."""
    from mlflow.exceptions import MlflowException

    try:
        auth.grant_user_permission(name, resource_type, resource_id, PERMISSION)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        auth.revoke_user_permission(name, resource_type, resource_id)
        auth.grant_user_permission(name, resource_type, resource_id, PERMISSION)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name", help="the teammate's user name")
    name = parser.parse_args().name
    experiment = add_teammate(name, new_user_password(name))
    print(f"{name} can log to experiment '{experiment}' and register models ({PERMISSION}).")


if __name__ == "__main__":
    run_entry_point(main)
