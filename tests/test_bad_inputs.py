"""Bad params and corrupt stage inputs stop a stage with one readable line and change nothing.

Each case calls, in this process, what the stage calls on that input (`load_params` and the
stage's own checks, the reader of the corrupt file) in a real copy of the project
(conftest.scaled_pipeline) whose `generate` and `scale` stages already ran, so there are outputs
that must stay untouched and an MLflow store whose runs can be counted. A stage process costs
seconds to start, so the contract around the message (exactly one line on stderr, a non-zero
exit, no output written, no MLflow run left RUNNING) is checked on real stage processes for
one case of each kind: a refusal before the stage's run opens, and one inside it.
"""

import hashlib
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from conftest import BuiltPipeline, PipelineRepo, run_statuses, set_dotted

from lstm_vs_rnn.data.scaling import MinMaxScaling
from lstm_vs_rnn.data.sources import read_series
from lstm_vs_rnn.errors import UserError
from lstm_vs_rnn.evaluation.horizon import check_horizon
from lstm_vs_rnn.files import read_array, write_csv
from lstm_vs_rnn.modeling.checkpoints import load_model, save_weights
from lstm_vs_rnn.modeling.networks import build_model
from lstm_vs_rnn.params import EXPERIMENT_NAME_ENV, ModelParams, dump_yaml, load_params, parse_yaml
from lstm_vs_rnn.paths import ProjectPaths

pytestmark = pytest.mark.e2e

DELETE = object()  # marks a key to remove from params.yaml


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every file of the project but params.yaml, git internals and bytecode: mtime and hash."""
    files = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if (
            not path.is_file()
            or relative.parts[0] == ".git"
            or "__pycache__" in relative.parts
            or relative == Path("params.yaml")
        ):
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        files[str(relative)] = (path.stat().st_mtime_ns, digest)
    return files


def stderr_lines(result: Any) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def prepared(
    tmp_path_factory: pytest.TempPathFactory, scaled_pipeline: BuiltPipeline
) -> Iterator[PipelineRepo]:
    """A project copy where generate and scale ran once with good params."""
    yield scaled_pipeline.copy_to(tmp_path_factory.mktemp("bad-inputs") / "project")


# --- bad params.yaml --------------------------------------------------------------------------
# (id, stage, edit, fragments the one error line must contain). An edit is a dict of dotted keys
# to new values (DELETE removes the key) or a string that replaces the whole file.
# With the tiny params: n_points 300, train_fraction 0.8 -> 240 training points, window 10.
BAD_PARAMS: list[tuple[str, str, dict[str, Any] | str, tuple[str, ...]]] = [
    ("epochs-text", "generate", {"train.epochs": "ten"}, ("train.epochs", "'ten'", "integer")),
    ("epochs-zero", "train@lstm-0", {"train.epochs": 0}, ("train.epochs", "= 0", ">= 1")),
    ("epochs-float", "generate", {"train.epochs": 2.5}, ("train.epochs", "2.5", "integer")),
    ("epochs-bool", "generate", {"train.epochs": True}, ("train.epochs", "True", "integer")),
    ("batch-negative", "generate", {"train.batch_size": -5}, ("train.batch_size", "-5", ">= 1")),
    ("n-points-zero", "generate", {"data.n_points": 0}, ("data.n_points", "= 0", ">= 10")),
    (
        "n-points-1e12-yaml-number",  # YAML 1.2, as DVC reads it: the float 1e12, not text
        "generate",
        "n_points: 1e12",
        ("data.n_points", "1000000000000.0", "integer"),
    ),
    (
        "n-points-absurd-int",
        "generate",
        {"data.n_points": 10**12},
        ("data.n_points", "1000000000000", "<= 10000000"),
    ),
    ("t-step-bool", "generate", {"data.t_step": False}, ("data.t_step", "False", "number")),
    ("noise-nan", "generate", {"data.noise_std": float("nan")}, ("data.noise_std", "nan", ">= 0")),
    ("noise-negative", "generate", {"data.noise_std": -0.5}, ("data.noise_std", "-0.5", ">= 0")),
    (
        "lr-inf",
        "generate",
        {"train.learning_rate": float("inf")},
        ("train.learning_rate", "inf", "> 0"),
    ),
    (
        "train-fraction-one",
        "scale",
        {"data.train_fraction": 1.0},
        ("data.train_fraction", "1.0", "< 1"),
    ),
    (
        "train-fraction-above-one",
        "generate",
        {"data.train_fraction": 1.5},
        ("data.train_fraction", "1.5", "< 1"),
    ),
    (
        "val-fraction-negative",
        "generate",
        {"train.val_fraction": -0.1},
        ("train.val_fraction", "-0.1", "> 0"),
    ),
    (
        "window-longer-than-training-part",
        "train@lstm-0",
        {"data.window": 300},
        ("data.window", "300", "at most 238"),
    ),
    (
        "window-leaves-one-window",
        "generate",
        {"data.window": 239},
        ("data.window", "239", "at most 238"),
    ),
    (
        "validation-tail-without-windows",
        "generate",
        {"train.val_fraction": 0.001},
        ("train.val_fraction", "0.001", "no validation window", "at least"),
    ),
    (
        "horizon-longer-than-test-part",
        "evaluate",
        {"evaluate.horizon": 61},
        ("evaluate.horizon", "= 61", "60 points", "at most 60"),
    ),
    ("hidden-size-zero", "generate", {"models.lstm.hidden_size": 0}, ("hidden_size", "= 0")),
    ("num-layers-negative", "evaluate", {"models.rnn.num_layers": -1}, ("num_layers", "-1")),
    (
        "grad-clip-zero",
        "generate",
        {"train.grad_clip_norm": 0},
        ("train.grad_clip_norm", "= 0", "> 0", "null"),
    ),
    (
        "device-unknown",
        "generate",
        {"train.device": "gpu"},
        ("train.device", "'gpu'", "auto, cpu, cuda"),
    ),
    (
        "unknown-model",
        "generate",
        {"models.gru": {"arch": "grue", "hidden_size": 8, "num_layers": 1}},
        ("models.gru.arch", "rnn, lstm, gru"),
    ),
    (
        "model-name-typo",
        "generate",
        {"models.lstm": {"arch": "lstm", "hiden_size": 8, "num_layers": 1}},
        ("models.lstm.hiden_size", "did you mean 'models.lstm.hidden_size'"),
    ),
    (
        "no-models",
        "generate",
        {"models": {}},
        ("models", "at least one", "arch, hidden_size, num_layers"),
    ),
    ("model-not-a-mapping", "generate", {"models.lstm": None}, ("models.lstm", "None")),
    (
        "key-typo-epoch",
        "generate",
        {"train.epoch": 5, "train.epochs": DELETE},
        ("train.epoch'", "did you mean 'train.epochs'"),
    ),
    (
        "key-typo-n-point",
        "generate",
        {"data.n_point": 300, "data.n_points": DELETE},
        ("data.n_point'", "did you mean 'data.n_points'"),
    ),
    (
        "section-typo",
        "generate",
        {"trian": {}, "train": DELETE},
        ("'trian'", "did you mean 'train'"),
    ),
    ("missing-section", "generate", {"tracking": DELETE}, ("missing key 'tracking'",)),
    ("missing-key", "generate", {"train.seed": DELETE}, ("missing key 'train.seed'",)),
    (
        "empty-experiment-name",
        "generate",
        {"tracking.experiment_name": ""},
        ("tracking.experiment_name", "''", "non-empty"),
    ),
    (
        "empty-file",
        "generate",
        "",
        ("params.yaml", "empty", "data, train, models, tune, evaluate, tracking"),
    ),
    (
        "invalid-yaml",
        "generate",
        "data:\n  n_points: [300\ntrain: {}\n",
        ("params.yaml", "invalid YAML", "line"),
    ),
]


def apply_edit(repo: PipelineRepo, good: str, edit: dict[str, Any] | str) -> None:
    path = repo.root / "params.yaml"
    if isinstance(edit, str):
        # A bare "key: value" line replaces that line of the good file; anything else is the file.
        key = edit.split(":")[0] if edit.count("\n") == 0 and ":" in edit else None
        if key and f"  {key}:" in good:
            lines = [
                f"  {edit}" if line.startswith(f"  {key}:") else line for line in good.split("\n")
            ]
            path.write_text("\n".join(lines))
        else:
            path.write_text(edit)
        return
    tree = parse_yaml(good)
    for dotted, value in edit.items():
        *sections, key = dotted.split(".")
        node = tree
        for section in sections:
            node = node[section]
        if value is DELETE:
            del node[key]
        else:
            node[key] = value
    path.write_text(dump_yaml(tree))


def test_at_least_25_bad_params_cases() -> None:
    assert len(BAD_PARAMS) >= 25
    assert len({case[0] for case in BAD_PARAMS}) == len(BAD_PARAMS)


def refusal(call: Callable[[], object]) -> str:
    """The line a stage prints for the UserError `call` raises (cli.run_entry_point)."""
    with pytest.raises(UserError) as raised:
        call()
    return f"error: {raised.value}"


def check_params_as(stage: str, root: Path) -> None:
    """What `stage` does with params.yaml before any work: validate it, and (evaluate) check
    the horizon against the test part."""
    params = load_params(root / "params.yaml")
    if stage == "evaluate":
        check_horizon(params, ProjectPaths(root))


@pytest.fixture
def no_experiment_name_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stages run with conftest.clean_env: no MLFLOW_EXPERIMENT_NAME of the caller's."""
    monkeypatch.delenv(EXPERIMENT_NAME_ENV, raising=False)


@pytest.mark.parametrize(
    ("stage", "edit", "fragments"),
    [case[1:] for case in BAD_PARAMS],
    ids=[case[0] for case in BAD_PARAMS],
)
def test_bad_params_stop_the_stage_with_one_line_and_change_nothing(
    prepared: PipelineRepo,
    no_experiment_name_env: None,
    stage: str,
    edit: dict[str, Any] | str,
    fragments: tuple[str, ...],
) -> None:
    good = (prepared.root / "params.yaml").read_text()
    before, runs_before = snapshot(prepared.root), run_statuses(prepared.root)
    try:
        apply_edit(prepared, good, edit)
        line = refusal(lambda: check_params_as(stage, prepared.root))
    finally:
        (prepared.root / "params.yaml").write_text(good)

    assert "\n" not in line, line
    assert line.startswith("error: params.yaml"), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} missing from: {line}"
    assert snapshot(prepared.root) == before, "a bad params.yaml created or modified a file"
    assert run_statuses(prepared.root) == runs_before, "a bad params.yaml touched MLflow"
    assert "RUNNING" not in runs_before.values()


def test_a_key_no_stage_reads_stops_dvc_repro_and_dvc_exp_run(
    scaled_pipeline: BuiltPipeline, tmp_path: Path
) -> None:
    """A typo'd key changes no key any stage lists, so without the check_params stage (on all
    of params.yaml) DVC skipped every stage and exited 0."""
    repo = scaled_pipeline.copy_to(tmp_path / "project")
    refusal = (
        "error: params.yaml: unknown key 'train.learning_rte'; did you mean 'train.learning_rate'?"
    )
    repo.edit_params({"train.learning_rte": 0.1})
    typed = repo.dvc("repro", "scale", check=False)
    assert typed.returncode != 0 and refusal in typed.stderr
    assert "Running stage 'generate'" not in typed.stdout
    repo.run("git", "checkout", "params.yaml")
    queued = repo.dvc("exp", "run", "-S", "+train.learning_rte=0.1", "scale", check=False)
    assert queued.returncode != 0 and refusal in queued.stderr
    repo.run("git", "checkout", "params.yaml")
    # A valid edit of a key no stage tracks runs the check alone: its output is the same bytes.
    repo.edit_params({"train.workers": 2})
    valid = repo.dvc("repro", "scale")
    assert "Running stage 'check_params'" in valid.stdout
    assert "Stage 'generate' didn't change, skipping" in valid.stdout
    assert "Stage 'scale' didn't change, skipping" in valid.stdout


def test_missing_params_file(prepared: PipelineRepo) -> None:
    path = prepared.root / "params.yaml"
    good = path.read_text()
    before = snapshot(prepared.root)
    path.unlink()
    try:
        line = refusal(lambda: load_params(path))
    finally:
        path.write_text(good)
    assert line == f"error: {path}: file not found; the pipeline needs its params file"
    assert snapshot(prepared.root) == before


# --- corrupt stage inputs ---------------------------------------------------------------------


def weights_bytes(architecture: str, hidden_size: int) -> bytes:
    """A real state_dict file of `architecture` as train@<model> writes it."""
    torch.manual_seed(0)
    model = build_model(ModelParams(arch=architecture, hidden_size=hidden_size, num_layers=1))
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


def truncate_csv(text: str, fields: int) -> str:
    """Cut the file off in the middle, inside a row that keeps only `fields` of its 3 values."""
    head = text[: len(text) // 2].rsplit("\n", 1)[0]
    row = text[len(head) + 1 :].split("\n", 1)[0]
    return head + "\n" + ",".join(row.split(",")[:fields])


def non_numeric_csv(text: str) -> str:
    lines = text.splitlines()
    lines[5] = "0.5,abc,0.4"
    return "\n".join(lines) + "\n"


# (id, stage, file to corrupt, new content from old, fragment naming the problem)
CORRUPT_INPUTS: list[tuple[str, str, str, Callable[[bytes], bytes], str]] = [
    (
        "truncated-csv-after-t",
        "scale",
        "data/raw/series.csv",
        lambda old: truncate_csv(old.decode(), 1).encode(),
        "finite number in every column (t, y, y_clean); is it truncated?",
    ),
    (
        "truncated-csv-after-y",
        "evaluate",
        "data/raw/series.csv",
        lambda old: truncate_csv(old.decode(), 2).encode(),
        "finite number in every column (t, y, y_clean); is it truncated?",
    ),
    (
        "non-numeric-csv",
        "scale",
        "data/raw/series.csv",
        lambda old: non_numeric_csv(old.decode()).encode(),
        "not a numeric CSV",
    ),
    ("empty-csv", "scale", "data/raw/series.csv", lambda old: b"", "not a numeric CSV"),
    (
        "truncated-npy",
        "train@lstm-0",
        "data/processed/fold_0/train.npy",
        lambda old: old[: len(old) // 3],
        "not a NumPy .npy array",
    ),
    (
        "scaler-missing-field",
        "evaluate",
        "data/processed/fold_0/scaler.json",
        lambda old: b'{"data_min": -1.5}\n',
        "expected finite numbers for keys data_min, data_max",
    ),
    (
        "model-from-other-architecture",
        "evaluate",
        "models/fold_0/lstm/repeat_001.pt",
        lambda old: weights_bytes("rnn", 8),
        "do not fit the 'lstm' model",
    ),
    (
        "model-with-other-hidden-size",
        "evaluate",
        "models/fold_0/lstm/repeat_001.pt",
        lambda old: weights_bytes("lstm", 16),
        "hidden_size=8",
    ),
    (
        "model-empty",
        "evaluate",
        "models/fold_0/lstm/repeat_001.pt",
        lambda old: b"",
        "not a model state_dict",
    ),
]


@pytest.fixture(scope="module")
def with_models(prepared: PipelineRepo) -> PipelineRepo:
    """Real weight files and loss histories of every repeat of both models (as train@<model>
    writes them) so evaluate can start."""
    repeats = prepared.params()["train"]["repeats"]
    for name in ("rnn", "lstm"):
        for repeat in range(repeats):
            path = prepared.root / "models" / "fold_0" / name / f"repeat_{repeat:03d}.pt"
            path.parent.mkdir(parents=True, exist_ok=True)
            save_weights(build_model(ModelParams(arch=name, hidden_size=8, num_layers=1)), path)
        history = pd.DataFrame(
            {
                "repeat": range(repeats),
                "seed": range(42, 42 + repeats),
                "epoch": 1,
                "train_loss": 0.1,
                "val_loss": 0.1,
            }
        )
        write_csv(
            prepared.root / "reports" / "plots" / "losses" / "fold_0" / f"{name}.csv", history
        )
    return prepared


def read_as_the_stages_do(root: Path, relative: str) -> None:
    """Read `relative` in the project at `root` as the stages that read it do (the weights as
    evaluate does, at the 'lstm' entry's settings in params.yaml)."""
    path = root / relative
    if path.suffix == ".csv":
        read_series(path)
    elif path.suffix == ".npy":
        read_array(path, "scale")
    elif path.suffix == ".json":
        MinMaxScaling.from_json(path)
    else:
        load_model("lstm", load_params(root / "params.yaml").models["lstm"], path)


@pytest.mark.parametrize(
    ("stage", "relative", "corrupt", "fragment"),
    [case[1:] for case in CORRUPT_INPUTS],
    ids=[case[0] for case in CORRUPT_INPUTS],
)
def test_corrupt_input_is_one_line_naming_the_file(
    with_models: PipelineRepo,
    stage: str,
    relative: str,
    corrupt: Callable[[bytes], bytes],
    fragment: str,
) -> None:
    """`stage` reads `relative` (scale and evaluate the series, train the scaled training part,
    evaluate the scaler and the weights) with the reader called here."""
    repo = with_models
    path = repo.root / relative
    good = path.read_bytes()
    before, runs_before = snapshot(repo.root), run_statuses(repo.root)
    path.write_bytes(corrupt(good))
    try:
        line = refusal(lambda: read_as_the_stages_do(repo.root, relative))
    finally:
        path.write_bytes(good)

    assert "\n" not in line, line
    assert line.startswith(f"error: {path}: "), line
    assert fragment in line, line
    # Every other file untouched (the corrupted one was written twice by this test).
    after = snapshot(repo.root)
    assert after.pop(relative)[1] == before.pop(relative)[1]
    assert after == before
    assert run_statuses(repo.root) == runs_before


# --- the one-line contract of a stage process -------------------------------------------------


def with_param(params_yaml: bytes, dotted: str, value: Any) -> bytes:
    tree = parse_yaml(params_yaml)
    set_dotted(tree, dotted, value)
    return dump_yaml(tree).encode()


# (id, stage, the file the case changes, its new content from the old, the line's start)
STAGE_REFUSALS: list[tuple[str, str, str, Callable[[bytes], bytes], str]] = [
    (
        "bad-param-before-the-run",
        "train@lstm-0",
        "params.yaml",
        lambda old: with_param(old, "train.epochs", 0),
        "error: params.yaml: train.epochs = 0",
    ),
    (
        "corrupt-weights-inside-the-run",
        "evaluate",
        "models/fold_0/lstm/repeat_001.pt",
        lambda old: weights_bytes("rnn", 8),
        "error: {path}: weights do not fit the 'lstm' model",
    ),
]
# The outputs of the stages above and of train@lstm-0: none may change.
OUTPUTS = (
    "reports/metrics.json",
    "reports/plots/losses/fold_0/lstm.csv",
    "data/processed/fold_0/test.npy",
)


@pytest.mark.parametrize(
    ("stage", "relative", "change", "start"),
    [case[1:] for case in STAGE_REFUSALS],
    ids=[case[0] for case in STAGE_REFUSALS],
)
def test_a_refusing_stage_prints_one_line_exits_1_and_leaves_no_output_or_running_run(
    with_models: PipelineRepo,
    stage: str,
    relative: str,
    change: Callable[[bytes], bytes],
    start: str,
) -> None:
    repo = with_models
    path = repo.root / relative
    good = path.read_bytes()
    existed = {output: _contents(repo.root / output) for output in OUTPUTS}
    assert existed[
        "reports/plots/losses/fold_0/lstm.csv"
    ]  # written by train@lstm-0: the check can fail
    runs_before = run_statuses(repo.root)
    path.write_bytes(change(good))
    assert path.read_bytes() != good
    try:
        result = repo.stage(stage, check=False, timeout=120)
    finally:
        path.write_bytes(good)

    assert result.returncode == 1, result.stderr
    lines = stderr_lines(result)
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    assert lines[0].startswith(start.format(path=path)), lines[0]
    assert {output: _contents(repo.root / output) for output in OUTPUTS} == existed
    statuses = run_statuses(repo.root)
    assert "RUNNING" not in statuses.values()
    # A refusal before the stage's MLflow run opens logs nothing; one inside it ends it FAILED.
    new = [status for run, status in statuses.items() if run not in runs_before]
    if relative == "params.yaml":
        assert new == [], new
    else:
        assert new and set(new) == {"FAILED"}, new


def _contents(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None
