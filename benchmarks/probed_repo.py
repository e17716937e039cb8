"""A temporary copy of the project whose real `dvc repro` runs every stage under stage_probe.

A copy (e.g. tests/conftest.py's `make_pipeline_repo`: git + DVC + the project files) gets a
`python` shim first on PATH, which routes `python stages/*.py` through the probe and anything else
to the real interpreter; the stage commands in dvc.yaml stay exactly as committed.
"""

import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstm_vs_rnn.params import ModelParams, parse_yaml
from lstm_vs_rnn.stage_names import stage_command
from tests.conftest import TINY_PARAMS, PipelineRepo

REPO_ROOT = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).with_name("stage_probe.py")
NS = 1e9

SHIM = """#!/bin/sh
case "$1" in
  stages/*.py)
    BENCH_T0_NS=$(date +%s%N)
    export BENCH_T0_NS
    "$BENCH_REAL_PYTHON" "$BENCH_PROBE" "$@"
    code=$?
    echo "$BENCH_T0_NS $(date +%s%N)" >> "$BENCH_STAGE_LOG.exits"
    exit $code ;;
  *) exec "$BENCH_REAL_PYTHON" "$@" ;;
esac
"""


def default_params() -> dict[str, Any]:
    """Overrides that undo conftest's tiny params: the values of the real params.yaml."""
    tree = parse_yaml((REPO_ROOT / "params.yaml").read_text())
    return {dotted: dotted_value(tree, dotted) for dotted in TINY_PARAMS}


def distinct_entries(models: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The first entry of each distinct network under `models:`: a tuned entry's listed
    settings are its untuned twin's (`rnn_tuned` is `rnn` until tuning chooses), and timing
    the same network twice would only double a section's time."""
    seen: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, entry in models.items():
        network = ModelParams.model_validate(entry).model_dump(exclude={"tune"})  # defaults in
        seen.setdefault(json.dumps(network, sort_keys=True), (name, entry))
    return dict(seen.values())


def dotted_value(tree: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        tree = tree[key]
    return tree


@dataclass(frozen=True)
class StageRecord:
    """One stage execution, as the probe and the shim recorded it."""

    raw: dict[str, Any]
    end_ns: int

    @property
    def stage(self) -> str:
        return self.raw["stage"]

    def span(self, start: str, end: str) -> float:
        return (self.raw[end] - self.raw[start]) / NS

    @property
    def wall(self) -> float:
        return (self.end_ns - self.raw["t0"]) / NS

    @property
    def imports(self) -> float:
        """Interpreter start and module imports, before the stage's main() runs."""
        return self.span("t0", "imported")

    @property
    def tracked(self) -> bool:
        """Whether the stage opened an MLflow run (a tune stage that does not tune opens none:
        its work runs from its imports to its exit)."""
        return "enter" in self.raw

    @property
    def open_store(self) -> float:
        """Connecting to MLflow, finding the parent run and creating the stage's run."""
        return self.span("enter", "open") if self.tracked else 0.0

    @property
    def torch_setup(self) -> float:
        """configure_torch: seeding and torch's global modes (train and evaluate only)."""
        return float(self.raw["calls"].get("configure_torch", (0, 0.0))[1])

    @property
    def startup(self) -> float:
        return self.imports + self.torch_setup + self.open_store

    @property
    def work(self) -> float:
        """The stage's work function (`lstm_vs_rnn.pipeline.<stage>.run`), less the tracking
        calls inside it; for code without one (a base commit), main() before stage_run
        (reading inputs) plus the body of stage_run."""
        if "work_start" in self.raw:
            return self.span("work_start", "work_end") - self.tracking_in_work
        if not self.tracked:
            return self.span("imported", "done") - self.torch_setup
        before = self.span("imported", "enter") - self.torch_setup
        return before + self.span("open", "body_end")

    @property
    def finish(self) -> float:
        """Closing the run (final flush, end times) and the interpreter's exit."""
        return (self.end_ns - self.raw["body_end" if self.tracked else "done"]) / NS

    @property
    def tracking_in_work(self) -> float:
        return sum(v for k, v in self.raw["tracking_seconds"].items() if k.startswith("work:"))

    @property
    def maxrss_kib(self) -> int:
        return int(self.raw["maxrss_kib"])

    @property
    def modules(self) -> list[str]:
        return list(self.raw["modules"])

    def call_rate(self, name: str) -> float | None:
        windows, seconds = self.raw["calls"].get(name, (0, 0.0))
        return windows / seconds if seconds else None

    @property
    def complete(self) -> bool:
        return self.raw["exit_code"] == 0 and ("body_end" in self.raw or not self.tracked)


@dataclass(frozen=True)
class ReproResult:
    wall: float
    stages: list[StageRecord]
    output: str
    returncode: int
    cpu: float  # user + system seconds of the command and everything it waited for

    @property
    def stage_names(self) -> list[str]:
        return [record.stage for record in self.stages]


class ProbedRepo:
    """A project copy plus the shim; every run collects the stage records it produced."""

    def __init__(self, repo: PipelineRepo) -> None:
        """`repo`: a project copy, e.g. `make_pipeline_repo`'s or a base commit's (section 6)."""
        self.repo = repo
        root = repo.root
        self.log = root.parent / f"{root.name}.stages.jsonl"
        shim_dir = root.parent / f"{root.name}.shim"
        shim_dir.mkdir(exist_ok=True)
        shim = shim_dir / "python"
        shim.write_text(SHIM)
        shim.chmod(0o755)
        self.env = {
            "PATH": f"{shim_dir}:{self.repo.env['PATH']}",
            "BENCH_REAL_PYTHON": sys.executable,
            "BENCH_PROBE": str(PROBE),
            "BENCH_STAGE_LOG": str(self.log),
        }

    @property
    def root(self) -> Path:
        return self.repo.root

    def edit_params(self, changes: dict[str, Any]) -> None:
        self.repo.edit_params(changes)

    def repro(self, timeout: float = 3600, check: bool = True) -> ReproResult:
        """`dvc repro` as a user runs it, timed from outside, with each stage's record."""
        return self.timed_run(("dvc", "repro"), {}, timeout, check)

    def stage(self, name: str, env: dict[str, str], timeout: float = 600) -> ReproResult:
        """One stage script run directly (as dvc would), e.g. against another tracking store."""
        command = ("python", *stage_command(name))
        return self.timed_run(command, {"PYTHONPATH": "src", **env}, timeout, check=True)

    def timed_run(
        self, command: tuple[str, ...], env: dict[str, str], timeout: float, check: bool
    ) -> ReproResult:
        self.log.unlink(missing_ok=True)
        Path(f"{self.log}.exits").unlink(missing_ok=True)
        cpu_before, started = children_cpu(), time.perf_counter()
        result: subprocess.CompletedProcess[str] = self.repo.run(
            *command, env={**self.env, **env}, timeout=timeout, check=check
        )
        wall, cpu = time.perf_counter() - started, children_cpu() - cpu_before
        output = result.stdout + result.stderr
        return ReproResult(wall, self.records(), output, result.returncode, cpu)

    def records(self) -> list[StageRecord]:
        if not self.log.exists():
            return []
        exits = dict(
            map(int, line.split()) for line in Path(f"{self.log}.exits").read_text().splitlines()
        )
        raws = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [StageRecord(raw, exits.get(raw["t0"], raw["done"])) for raw in raws]


def children_cpu() -> float:
    """CPU seconds of finished child processes: what a command costs, whatever the host load."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median_by_stage(results: list[ReproResult], field: str) -> dict[str, float]:
    """Per stage, the median of one StageRecord property over repeated runs."""
    values: dict[str, list[float]] = {}
    for result in results:
        for record in result.stages:
            values.setdefault(record.stage, []).append(getattr(record, field))
    return {stage: statistics.median(samples) for stage, samples in values.items()}
