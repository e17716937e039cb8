"""Model entries in MLflow's Model Registry: one registered model per entry, one version per
configuration that trained it, and the aliases `newest` and `favoured-by-verdict`.

A registered model per entry, named `<experiment>.<entry>` (`lstm-vs-rnn.lstm`), not per
architecture: an entry is what params.yaml names and what a user edits (`models.lstm.*`), so its
versions are one forecaster across configurations and compare like for like, while entries of
one architecture that the comparison keeps apart (`rnn`, `rnn_wide`, `rnn_tuned`) stay apart.
Registered model names are global to a store, hence the experiment in the name.

The train stage registers the model it logs (`register_forecaster`): a configuration that
already has a version (`dvc repro --force`, a teammate on the same commit) is found by its
configuration hash and adds none. The evaluate stage points `favoured-by-verdict` at the model
the primary verdict favours (`point_favoured_alias`). Whatever the registry refuses (a server
whose user may log runs but not register models) is one warning line: the run, its logged model
and its metrics are complete without it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from lstm_vs_rnn.params import EXECUTION_KEYS, Params
from lstm_vs_rnn.paths import PATHS
from lstm_vs_rnn.tracking.identity import file_sha256
from lstm_vs_rnn.tracking.store import redact, refusal_reason, store_lock, tracking_uri
from lstm_vs_rnn.tracking.tags import (
    COMMIT_TAG,
    CONFIG_TAG,
    DIRTY_TAG,
    MLFLOW_PARENT_RUN_ID,
    MODEL_HASH_TAG,
)

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

    from lstm_vs_rnn.tracking.runs import StageRun

LOG = logging.getLogger(__name__)

# `latest` is reserved by MLflow (`models:/<name>/latest` is the highest version already).
NEWEST_ALIAS = "newest"
# Named for what decides it, so nobody reads it as a deployment stage.
FAVOURED_ALIAS = "favoured-by-verdict"
# On the registered model that holds FAVOURED_ALIAS: the verdict and the configuration.
VERDICT_TAG = "favoured_by_verdict"
PARAMS_CHANGED_TAG = "params_changed"
VERSION_COMMIT_TAG = "git.commit"
# The logged model's own tags copied onto its version (train stage: which repeat it is).
COPIED_MODEL_TAGS = ("repeat", "seed", "chosen_by")
# Params that decide an entry's model besides those its train run logs (data.window, train.*,
# models.<entry>.*, chosen.*): the series and, for a tuned entry, the search.
UPSTREAM_PREFIXES = ("data.", "tune.")
# MLflow cuts longer tag values; a note says the rest is in the runs.
MAX_TAG_CHARS = 4000
# A pair's verdict in metrics.json: "<tier>: <reading>" ("primary: lstm better").
TIER_SEPARATOR = ": "
BETTER_SUFFIX = " better"


def registered_name(experiment: str, entry: str) -> str:
    """`<experiment>.<entry>`, with the characters MLflow refuses in a name ('/', ':') as '-'."""
    return f"{experiment}.{entry}".replace("/", "-").replace(":", "-")


def register_forecaster(run: StageRun, entry: str, model_id: str, weights: Path) -> None:
    """Register the model `model_id` that `run` (a `train@<entry>` run) logged, as a version of
    `<experiment>.<entry>`, unless this configuration has one; point `newest` at the newest.

    The version's tags: `pipeline.config_hash`, `git.commit`, `git.dirty`, `model.sha256` (the
    weights file's sha256, for `point_favoured_alias`), `params_changed` (against the previous
    version), and the logged model's `repeat`, `seed` and `chosen_by`. Refusals: one warning.
    """
    client = run.client
    name = registered_name(client.get_experiment(run.experiment_id).name, entry)
    config = run.inherited_tags[CONFIG_TAG]
    with _refusals_reported(f"register the model '{name}'"):
        with store_lock():
            existing = _version_of_configuration(client, name, config)
            version = existing or _new_version(client, run, name, entry, model_id, weights)
        version = _first_of_configuration(client, name, config, version)
        newest = _point_newest(client, name)
        if existing:
            LOG.info(
                "%s version %s already holds configuration %s: no new version",
                name,
                version.version,
                config,
            )
        else:
            LOG.info(
                "registered %s version %s (configuration %s); models:/%s@%s is version %s",
                name,
                version.version,
                config,
                name,
                NEWEST_ALIAS,
                newest,
            )


def point_favoured_alias(run: StageRun, params: Params, metrics: Mapping[str, object]) -> None:
    """Point `favoured-by-verdict` at the version of each entry a primary verdict favours
    (`evaluate.primary`: one entry per pair at most) that holds the weights evaluated here, and
    remove it from every other registered model of the experiment; an entry whose version is
    missing, and a configuration whose primary verdicts favour no entry, are said in one line.

    `metrics` is metrics.json's content; the favoured model's tag `favoured_by_verdict` quotes
    its pair's verdict in full.
    """
    client = run.client
    experiment = client.get_experiment(run.experiment_id).name
    config = run.inherited_tags[CONFIG_TAG]
    with _refusals_reported(f"set the alias '{FAVOURED_ALIAS}'"):
        targets: dict[str, tuple[ModelVersion, str]] = {}
        readings = []
        for pair, verdict in primary_verdicts(params, metrics):
            readings.append(f"{pair}: {verdict}")
            entry = favoured_entry(verdict, pair)
            if entry is None:
                continue
            name = registered_name(experiment, entry)
            target = _version_holding(client, name, _weights_of(params, entry))
            if target is None:
                LOG.info(
                    "no registered version of %s holds the weights evaluated here (their "
                    "training was not registered): it does not get the alias %s",
                    name,
                    FAVOURED_ALIAS,
                )
                continue
            targets[name] = (target, f"{pair}: {verdict} (configuration {config})")
            LOG.info(
                "%s: %s version %s (%s: %s)", FAVOURED_ALIAS, name, target.version, pair, verdict
            )
        move_favoured_alias(client, experiment, targets)
        if not targets:
            LOG.info(
                "the primary verdicts (%s) favour no registered entry: no model has the alias %s",
                "; ".join(readings) or "none: no pair of evaluate.primary is configured",
                FAVOURED_ALIAS,
            )


def primary_verdicts(params: Params, metrics: Mapping[str, object]) -> list[tuple[str, str]]:
    """The key in metrics.json and the verdict of each pair of `evaluate.primary` that this
    configuration has (both entries under `models`)."""
    found = []
    for first, second in params.evaluate.primary:
        summary = metrics.get(f"{first}_vs_{second}")
        if isinstance(summary, Mapping) and "verdict" in summary:
            found.append((f"{first}_vs_{second}", str(summary["verdict"])))
    return found


def favoured_entry(verdict: str, pair: str) -> str | None:
    """The entry of `pair` (`<first>_vs_<second>`) its verdict names better ("primary: lstm
    better"), or None ("primary: no difference detected", "... inconclusive ...")."""
    reading = verdict.partition(TIER_SEPARATOR)[2] or verdict
    if not reading.endswith(BETTER_SUFFIX):
        return None
    entry = reading.removesuffix(BETTER_SUFFIX)
    return entry if entry in pair.split("_vs_") else None


@contextmanager
def _refusals_reported(action: str) -> Iterator[None]:
    """A registry call the store refuses is one warning line; the stage goes on."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        if exc.error_code == "PERMISSION_DENIED":
            user = os.environ.get("MLFLOW_TRACKING_USERNAME", "you")
            LOG.warning(
                "user '%s' may not %s at %s (403); the run goes on without it: ask the "
                "server's admin to run 'make teammate NAME=%s'",
                user,
                action,
                redact(tracking_uri()),
                user,
            )
            return
        LOG.warning(
            "the MLflow store %s refused to %s (%s: %s); the run goes on without it",
            redact(tracking_uri()),
            action,
            exc.error_code,
            refusal_reason(exc),
        )


def _versions(client: MlflowClient, name: str) -> list[ModelVersion]:
    """Every version of the registered model `name`, oldest first (none if it does not exist)."""
    found = client.search_model_versions(f"name = '{name}'")
    return sorted(found, key=lambda version: int(version.version))


def _version_of_configuration(client: MlflowClient, name: str, config: str) -> ModelVersion | None:
    matching = [v for v in _versions(client, name) if v.tags.get(CONFIG_TAG) == config]
    return matching[0] if matching else None


def _first_of_configuration(
    client: MlflowClient, name: str, config: str, ours: ModelVersion
) -> ModelVersion:
    """The configuration's first version; ours is deleted if another machine registered the
    same configuration at the same moment (MLflow has no conditional create)."""
    first = _version_of_configuration(client, name, config)
    if first is None or str(first.version) == str(ours.version):
        return ours
    client.delete_model_version(name, ours.version)
    return first


def _new_version(
    client: MlflowClient, run: StageRun, name: str, entry: str, model_id: str, weights: Path
) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(
            name,
            description=f"The model entry `{entry}` (params.yaml `models.{entry}`): one version "
            f"per configuration that trained it. Aliases: `{NEWEST_ALIAS}`, the newest "
            f"version; `{FAVOURED_ALIAS}`, set by the evaluate stage when the primary verdict "
            f"(test RMSE of `lstm` vs `rnn`) favours this entry.",
        )
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    versions = _versions(client, name)
    model_tags = client.get_logged_model(model_id).tags
    tags = {
        CONFIG_TAG: run.inherited_tags[CONFIG_TAG],
        VERSION_COMMIT_TAG: run.inherited_tags.get(COMMIT_TAG, "not a git checkout"),
        DIRTY_TAG: run.inherited_tags.get(DIRTY_TAG, "unknown"),
        MODEL_HASH_TAG: file_sha256(weights),
        PARAMS_CHANGED_TAG: _params_changed(client, versions[-1] if versions else None, run, entry),
        **{key: model_tags[key] for key in COPIED_MODEL_TAGS if key in model_tags},
    }
    return client.create_model_version(
        name,
        source=f"models:/{model_id}",
        run_id=run.run_id,
        tags=tags,
        description=f"`{entry}` trained under configuration {tags[CONFIG_TAG]} (commit "
        f"{tags[VERSION_COMMIT_TAG][:12]}): repeat {tags.get('repeat', '?')}, the one of "
        f"lowest final-epoch validation loss. Changed since the previous version: "
        f"{tags[PARAMS_CHANGED_TAG]}",
        model_id=model_id,
    )


def _params_changed(
    client: MlflowClient, previous: ModelVersion | None, run: StageRun, entry: str
) -> str:
    """`key: old -> new; ...` of the params that decide the entry's model, against the previous
    version's training run."""
    from mlflow.exceptions import MlflowException

    if previous is None:
        return "first version"
    try:
        before = _entry_params(client, previous.run_id)
    except MlflowException:
        return f"unknown: version {previous.version}'s training run is gone"
    after = _entry_params(client, run.run_id)
    changes = [
        f"{key}: {before.get(key, '-')} -> {after.get(key, '-')}"
        for key in sorted(before.keys() | after.keys())
        if before.get(key) != after.get(key)
    ]
    text = "; ".join(changes) or "none: the code or the data file changed"
    if len(text) > MAX_TAG_CHARS:
        text = text[: MAX_TAG_CHARS - 40] + "; ... (the rest: compare the two runs)"
    return text


def _entry_params(client: MlflowClient, run_id: str) -> dict[str, str]:
    """The params of a `train@<entry>` run and the data and tuning params of its parent."""
    run = client.get_run(run_id)
    parent = client.get_run(run.data.tags[MLFLOW_PARENT_RUN_ID]).data.params
    upstream = {key: value for key, value in parent.items() if key.startswith(UPSTREAM_PREFIXES)}
    merged = {**upstream, **run.data.params}
    return {key: value for key, value in merged.items() if key not in EXECUTION_KEYS}


def _point_newest(client: MlflowClient, name: str) -> str:
    """Point NEWEST_ALIAS at the highest version number; return it."""
    newest = _versions(client, name)[-1].version
    client.set_registered_model_alias(name, NEWEST_ALIAS, newest)
    return newest


def _weights_of(params: Params, entry: str) -> set[str]:
    """The sha256 of every repeat's weights of `entry` in the workspace."""
    files = (PATHS.model_weights(entry, repeat) for repeat in range(params.train.repeats))
    return {file_sha256(path) for path in files if path.is_file()}


def _version_holding(client: MlflowClient, name: str, weights: set[str]) -> ModelVersion | None:
    """The newest version of `name` whose weights are one of `weights`."""
    holding = [v for v in _versions(client, name) if v.tags.get(MODEL_HASH_TAG) in weights]
    return holding[-1] if holding else None


def move_favoured_alias(
    client: MlflowClient, experiment: str, targets: Mapping[str, tuple[ModelVersion, str]]
) -> None:
    """FAVOURED_ALIAS and VERDICT_TAG on each registered model of `targets` (name -> its
    version and the verdict to quote), off every other registered model of the experiment."""
    prefix = registered_name(experiment, "")
    for model in client.search_registered_models(f"name LIKE '{prefix}%'"):
        if model.name in targets:
            continue
        if FAVOURED_ALIAS in client.get_registered_model(model.name).aliases:
            client.delete_registered_model_alias(model.name, FAVOURED_ALIAS)
        if VERDICT_TAG in model.tags:
            client.delete_registered_model_tag(model.name, VERDICT_TAG)
    for name, (version, verdict) in targets.items():
        client.set_registered_model_alias(name, FAVOURED_ALIAS, version.version)
        client.set_registered_model_tag(name, VERDICT_TAG, verdict)
