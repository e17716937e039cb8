"""Writing and reading the pipeline's files: atomically, without pickle, with clear errors.

Every output goes to a temporary name in its final folder and is renamed into place only when
complete, so a crash or Ctrl-C never leaves a half-written file for DVC to hash. pandas is
imported by the CSV reader only: processes that handle no frame (a tune worker, a tune stage
that does not tune) are spared its import (0.3 s).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lstm_vs_rnn.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

# Full precision, so that floats written to CSV read back bit for bit.
CSV_FLOAT_FORMAT = "%.17g"

# renameat2(2): paths relative to the working directory, and the flag that swaps the two.
_AT_FDCWD, _EXCHANGE = -100, 2


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temporary_path = Path(temporary)
    temporary_path.chmod(0o666 & ~_current_umask())  # mkstemp makes it owner-only
    try:
        yield temporary_path
        os.replace(temporary_path, path)
    finally:
        temporary_path.unlink(missing_ok=True)


@contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; it replaces `path` only if the block succeeds.

    For outputs written file by file over a long time (one weights file per training repeat):
    an interrupted stage leaves no folder with some repeats done and others missing. The old
    folder is swapped out, not removed first (`replace_directory`), so one complete folder
    exists at every instant.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    temporary.chmod(0o777 & ~_current_umask())  # mkdtemp makes it owner-only
    try:
        yield temporary
        replace_directory(temporary, path)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def replace_directory(new: Path, path: Path) -> None:
    """Put folder `new` at `path`, then delete the folder that was there, if any.

    Where the kernel and file system support it (Linux >= 3.15: ext4, btrfs, xfs, tmpfs), the
    two folders are exchanged in one atomic `renameat2(RENAME_EXCHANGE)`: `path` holds the old
    folder, then the new one, never neither. Elsewhere the old folder is renamed aside first
    (`.<name>.old`), then the new one in: an interruption between the two leaves the old folder
    complete beside `path`. The old folder is deleted only once the new one is in place.
    """
    if not path.exists():
        os.replace(new, path)
        return
    if _exchange(new, path):
        _discard(new)
        return
    aside = path.with_name(f".{path.name}.old")
    shutil.rmtree(aside, ignore_errors=True)
    os.replace(path, aside)
    os.replace(new, path)
    _discard(aside)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically with Linux's renameat2(RENAME_EXCHANGE); False if unsupported."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:  # not glibc >= 2.28, or not Linux
        return False
    done = renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _EXCHANGE)
    if done == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # the file system cannot
        return False
    raise OSError(error, os.strerror(error), str(second))


def _discard(folder: Path) -> None:
    """Delete a replaced folder (the step after the swap)."""
    shutil.rmtree(folder)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_with(path: Path, writer: Callable[[Path], Any]) -> None:
    """Run `writer(temporary_path)` and move its result to `path` atomically."""
    with atomic_path(path) as temporary:
        writer(temporary)


def write_text(path: Path, text: str) -> None:
    write_with(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def write_json(path: Path, payload: Any) -> None:
    write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    write_with(
        path,
        lambda temporary: frame.to_csv(
            temporary, index=False, float_format=CSV_FLOAT_FORMAT, lineterminator="\n"
        ),
    )


def write_array(path: Path, array: np.ndarray) -> None:
    def save(temporary: Path) -> None:
        with temporary.open("wb") as stream:
            np.save(stream, array, allow_pickle=False)

    write_with(path, save)


def read_array(path: Path, producer: str) -> np.ndarray:
    """Load a 1-D float array saved by `write_array`; never unpickles."""
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found; run the '{producer}' stage first") from None
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(f"{path}: not a NumPy .npy array written by '{producer}' ({exc})") from None
    if array.ndim != 1 or array.dtype.kind != "f" or not np.isfinite(array).all():
        raise UserError(
            f"{path}: expected a 1-D array of finite floats, "
            f"got shape {array.shape} of {array.dtype}"
        )
    return array


def read_numeric_csv(
    path: Path,
    required: tuple[str, ...],
    producer: str,
    min_rows: int = 1,
    text_columns: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Read a CSV written by `write_csv`; a missing, non-numeric or cut-off file is a UserError.

    Every column must be finite in every row: a missing value is what a file cut off mid-row
    looks like. A column in `text_columns` (ISO dates) may hold text instead of numbers; it
    must not be empty.
    """
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype={column: str for column in text_columns})
        numeric = frame.drop(columns=[c for c in text_columns if c in frame.columns])
        for column in text_columns:
            if (
                column in frame.columns
                and pd.to_numeric(frame[column], errors="coerce").notna().all()
            ):
                frame[column] = frame[column].astype("float64")
        numeric = numeric.astype("float64")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found; run the '{producer}' stage first") from None
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UserError(
            f"{path}: not a numeric CSV with columns {', '.join(required)} "
            f"({str(exc).splitlines()[0]}); re-run the '{producer}' stage"
        ) from None
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise UserError(
            f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(required)}"
        )
    text_filled = all(frame[c].notna().all() for c in text_columns if c in frame.columns)
    if len(frame) < min_rows or not np.isfinite(numeric.to_numpy()).all() or not text_filled:
        raise UserError(
            f"{path}: needs at least {min_rows} row(s) with a finite number in every column "
            f"({', '.join(frame.columns)}); is it truncated? re-run the '{producer}' stage"
        )
    frame[numeric.columns] = numeric
    return frame
