"""How DVC names the stages it fans out over model entries and folds.

dvc.yaml's `matrix:` over `entry` (the keys of `models:`) and `fold` (`evaluate.folds`) makes
`tune@<entry>-<fold>` and `train@<entry>-<fold>`: DVC joins a matrix item's values with '-'
(dvc.parsing.MatrixDefinition). An entry name holds no '-' (params.MODEL_NAME_PATTERN), so a
name splits back into its entry and fold without ambiguity.
"""

# The stages DVC runs once per model entry and fold.
ENTRY_STAGES = ("tune", "train")


def entry_stage(stage: str, entry: str, fold: int) -> str:
    """DVC's name of `stage` (tune or train) for `entry` and `fold`: `train@lstm-0`."""
    return f"{stage}@{entry}-{fold}"


def stage_command(name: str) -> list[str]:
    """The script and arguments DVC runs for stage `name` (dvc.yaml's `cmd` without its
    environment): `train@lstm-0` is `stages/train.py lstm 0`, `evaluate` is
    `stages/evaluate.py`."""
    stage, _, item = name.partition("@")
    entry, _, fold = item.rpartition("-")
    return [f"stages/{stage}.py", *([entry, fold] if item else [])]


def entry_and_fold(name: str) -> tuple[str, int] | None:
    """(entry, fold) of a stage named `tune@<entry>-<fold>` or `train@<entry>-<fold>`, else
    None (another stage, or one of a layout without folds: `train@lstm`)."""
    stage, at, item = name.partition("@")
    entry, _, fold = item.rpartition("-")
    if stage not in ENTRY_STAGES or not at or not entry or not fold.isdigit():
        return None
    return entry, int(fold)
