"""Atomic output files, delimiter-agnostic table reading and JSON objects with clear errors."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from catalogs.schema import EmptyInputError, InputError, Source


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Readers never see a half-written file, and an interrupted run leaves the previous file intact.
    The temporary name keeps the suffix so that writers which infer the format from it
    (matplotlib, ObsPy) behave as for the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_json_object(path: str | os.PathLike, what: str = "JSON object") -> dict:
    """The JSON object in ``path``; :class:`InputError` naming the file when it is missing, not
    valid JSON, or not an object (``what`` names the expected content in the message)."""
    try:
        values = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(values, dict):
        raise InputError(f"{path}: expected a {what}")
    return values


def write_csv_atomic(df: pd.DataFrame, path: str | os.PathLike, **kwargs) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, **kwargs)


def first_line(path: Path) -> str:
    """The first non-blank line of a text file ('' for an empty file)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                return line
    return ""


def read_table(path: str | os.PathLike, header: bool = True) -> tuple[pd.DataFrame, Source]:
    """Read a comma-, tab- or whitespace-separated text table with every cell as a string.

    The separator is chosen from the first non-blank line: a tab, else a comma, else runs of
    white space. Columns are parsed later by the schema helpers so that a bad value can be
    reported with its file line.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    line = first_line(path)
    if not line:
        raise EmptyInputError(f"{path}: the file is empty")
    sep = "\t" if "\t" in line else ("," if "," in line else r"\s+")
    try:
        df = pd.read_csv(
            path,
            sep=sep,
            dtype=str,
            header=0 if header else None,
            skipinitialspace=True,
            comment=None,
            engine="python" if sep == r"\s+" else "c",
        )
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read as a table ({exc})") from None
    df.columns = [str(c).strip() for c in df.columns]
    return df, Source(str(path), first_line=2 if header else 1)
