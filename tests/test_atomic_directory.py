"""Replacing a model folder keeps one complete folder at every instant, whatever interrupts it."""

import os
from pathlib import Path

import pytest

from lstm_vs_rnn import files
from lstm_vs_rnn.files import atomic_directory


def write_repeats(folder: Path, label: str) -> None:
    for repeat in range(3):
        (folder / f"repeat_{repeat:03d}.pt").write_text(f"{label} {repeat}")


def contents(folder: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(folder.iterdir())}


@pytest.fixture
def old_folder(tmp_path: Path) -> Path:
    path = tmp_path / "models" / "fold_0" / "lstm"
    path.mkdir(parents=True)
    write_repeats(path, "old")
    return path


def interrupt(*args: object) -> None:
    raise KeyboardInterrupt


def test_a_complete_block_replaces_the_folder_and_leaves_nothing_beside_it(
    old_folder: Path,
) -> None:
    with atomic_directory(old_folder) as folder:
        write_repeats(folder, "new")
    assert contents(old_folder) == {f"repeat_{i:03d}.pt": f"new {i}" for i in range(3)}
    assert [path.name for path in old_folder.parent.iterdir()] == ["lstm"]


def test_an_interruption_inside_the_block_keeps_the_old_folder(old_folder: Path) -> None:
    with pytest.raises(KeyboardInterrupt), atomic_directory(old_folder) as folder:
        (folder / "repeat_000.pt").write_text("new 0")
        raise KeyboardInterrupt
    assert contents(old_folder) == {f"repeat_{i:03d}.pt": f"old {i}" for i in range(3)}
    assert [path.name for path in old_folder.parent.iterdir()] == ["lstm"]


def test_an_interruption_after_the_swap_leaves_the_new_folder_in_place(
    old_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "_discard", interrupt)
    with pytest.raises(KeyboardInterrupt), atomic_directory(old_folder) as folder:
        write_repeats(folder, "new")
    assert contents(old_folder) == {f"repeat_{i:03d}.pt": f"new {i}" for i in range(3)}


def test_without_an_atomic_exchange_an_interruption_between_the_renames_keeps_the_old_folder(
    old_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file system without RENAME_EXCHANGE: the old folder is renamed aside, then the new one
    in; interrupted between the two, the old folder is complete beside the path."""
    monkeypatch.setattr(files, "_exchange", lambda first, second: False)
    renames = []
    real_replace = os.replace

    def replace_then_interrupt(source: Path, target: Path) -> None:
        renames.append(Path(target).name)
        if len(renames) == 2:
            raise KeyboardInterrupt
        real_replace(source, target)

    monkeypatch.setattr(files.os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt), atomic_directory(old_folder) as folder:
        write_repeats(folder, "new")
    monkeypatch.undo()
    assert renames == [".lstm.old", "lstm"]
    aside = old_folder.with_name(".lstm.old")
    assert contents(aside) == {f"repeat_{i:03d}.pt": f"old {i}" for i in range(3)}


def test_the_exchange_swaps_two_folders_in_one_step(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "x").write_text("a")
    (second / "x").write_text("b")
    swapped = files._exchange(first, second)  # False where the file system cannot
    expected = ("b", "a") if swapped else ("a", "b")
    assert ((first / "x").read_text(), (second / "x").read_text()) == expected
