"""The stale-run sweep on a real MLflow store: which RUNNING runs it ends, and which it must not.

The team-server test shows it end to end (a SIGKILLed stage on PostgreSQL); this one covers each
reason a process is gone, and a machine that shares this one's host name, in a few seconds.
"""

import subprocess
import sys
from pathlib import Path

from lstm_vs_rnn.tracking.liveness import (
    BOOT_TAG,
    ENDED_BY_TAG,
    MACHINE_TAG,
    PID_TAG,
    START_TAG,
    end_dead_runs,
    location_tags,
)


def test_the_sweep_ends_this_machines_dead_runs_only(tmp_path: Path, sqlite_store: str) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(sqlite_store)
    experiment = client.create_experiment("sweep", artifact_location=(tmp_path / "a").as_uri())
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    here = location_tags()
    runs = {
        name: client.create_run(experiment, tags={**here, **tags}).info.run_id
        for name, tags in {
            "alive": {},
            "exited": {PID_TAG: str(finished.pid)},
            "pid reused": {START_TAG: "0"},
            "rebooted": {BOOT_TAG: "an-earlier-boot"},
            "same host name, other machine": {MACHINE_TAG: "another-machine", PID_TAG: "1"},
        }.items()
    }

    ended = end_dead_runs(client, experiment)

    assert sorted(ended) == sorted(runs[name] for name in ("exited", "pid reused", "rebooted"))
    for name, run_id in runs.items():
        run = client.get_run(run_id)
        if run_id in ended:
            assert run.info.status == "KILLED"
            assert run.data.tags[ENDED_BY_TAG].startswith("stale-run sweep: "), name
        else:
            assert run.info.status == "RUNNING", name
    reasons = {client.get_run(run_id).data.tags[ENDED_BY_TAG] for run_id in ended}
    assert any("rebooted" in reason for reason in reasons)
    assert any("no longer exists" in reason for reason in reasons)
    assert any("belongs to another" in reason for reason in reasons)
