"""Bank statement formats -> the loader's SplitFile: `read(name, data)` picks the reader by content.

OFX/QFX (formats.ofx), CAMT.053 (formats.camt), MT940 (formats.mt940), QIF (formats.qif); anything
else is the CSV contract (csv_contract.split_csv). The extension only names the format of a file
whose content says nothing (that reader then rejects it with its E003 reason).

Design notes (the readers, parsers, extensions, content markers): docs/design-notes.md#titans_assetslibformats__init__py
"""

from __future__ import annotations

import re
from pathlib import Path, PurePath

from titans_assets.lib.csv_contract import SplitFile, split_csv
from titans_assets.lib.formats._common import STATEMENT_COLUMNS, StatementFile

__all__ = ["EXTENSIONS", "STATEMENT_COLUMNS", "StatementFile", "read", "sniff"]

# Landing-folder suffixes the loader picks up.
EXTENSIONS = (".csv", ".ofx", ".qfx", ".xml", ".sta", ".mt940", ".940", ".qif")
_BY_EXTENSION = {
    ".ofx": "ofx",
    ".qfx": "ofx",
    ".xml": "camt",
    ".sta": "mt940",
    ".mt940": "mt940",
    ".940": "mt940",
    ".qif": "qif",
}
_MT940 = re.compile(r"^\s*(\{1:|:20:|:25:|:28C?:|:60[FM]:)", re.MULTILINE)


def sniff(name: str, data: bytes) -> str:
    """`ofx`, `camt`, `mt940`, `qif` or `csv`: by content first, then by extension."""
    head = data[:8192].lstrip(b"\xef\xbb\xbf\xff\xfe \t\r\n").decode("latin-1", errors="replace")
    upper = head.upper()
    if upper.startswith("OFXHEADER") or "<OFX>" in upper or "<?OFX" in upper:
        return "ofx"
    if head.startswith("<"):
        if "camt.053" in head or "<BkToCstmrStmt" in head or ":BkToCstmrStmt" in head:
            return "camt"
        return _BY_EXTENSION.get(PurePath(name).suffix.lower(), "csv")
    if re.match(r"!(type|account|option|clear)", head, re.IGNORECASE):
        return "qif"
    if _MT940.search(head):
        return "mt940"
    return _BY_EXTENSION.get(PurePath(name).suffix.lower(), "csv")


def read(name: str, data: bytes, path: Path | None = None, profiles_dir: Path | None = None) -> SplitFile:
    """The file as a SplitFile (a StatementFile for the statement formats). Never raises for content.

    A CSV is read by its CSV profile (formats.profiles): the one named beside `path` when given, else
    the one its header fits among the user's (`profiles_dir`, default Settings.profiles_in()) and the
    built-in ones; the seed ledger's is the CSV contract itself (csv_contract.split_csv, unchanged)."""
    kind = sniff(name, data)
    if kind == "csv":
        return _read_csv(name, data, path, profiles_dir)
    if kind == "ofx":
        from titans_assets.lib.formats import ofx as reader
    elif kind == "camt":
        from titans_assets.lib.formats import camt as reader
    elif kind == "mt940":
        from titans_assets.lib.formats import mt940 as reader
    else:
        from titans_assets.lib.formats import qif as reader
    try:
        return reader.read(data)
    except Exception as exc:  # noqa: BLE001 - a parser bug must still be one E003 line, not a traceback
        from titans_assets.lib.formats._common import reject

        return reject(
            reader.FORMAT,
            data.decode("utf-8", errors="replace"),
            f"the {reader.FORMAT} reader failed: {type(exc).__name__}: {exc}",
            reader.MARKER,
        )


def _read_csv(name: str, data: bytes, path: Path | None, profiles_dir: Path | None) -> SplitFile:
    from titans_assets.lib.formats import profiles as pf

    named = pf.beside(path)
    if named is not None:
        try:
            profile = pf.load_profile(named)
        except pf.ProfileError as exc:
            text, _ = pf.decode(data)
            return pf._reject_all(text, pf.Profile("", "", {}, header=False), ",", 0, [], str(exc), "utf-8")
        return split_csv(data) if profile.contract else pf.read(data, profile)
    if profiles_dir is None:
        from titans_assets.lib.settings import Settings

        profiles_dir = Settings.from_env().profiles_in()
    users, broken = pf.user_profiles(profiles_dir)
    candidates = [*users, *pf.builtin_profiles()]
    sample, _ = pf.decode(data[: pf._SAMPLE_BYTES])
    choice, cells, delimiter = pf.choose(sample, candidates)
    if choice.profile is not None:
        return split_csv(data) if choice.profile.contract else pf.read(data, choice.profile)
    split = split_csv(data)  # what the contract makes of it: every line quarantined, its reason kept
    if not split.file_error and not choice.error.startswith("ambiguous"):
        return split  # (empty file / header only: nothing to reject)
    error = pf.rejection(
        choice.error,
        cells,
        delimiter,
        candidates,
        name,
        broken,
        split.file_error if not choice.error.startswith("ambiguous") else None,
    )
    if choice.error.startswith("ambiguous"):
        text, encoding = pf.decode(data)
        header_line = next((n for n, t in enumerate(text.splitlines(), 1) if t.strip()), 1)
        return pf._reject_all(text, pf.Profile("", "", {}), delimiter, header_line, cells, error, encoding)
    old = split.file_error
    split.file_error = error
    split.quarantine = [(n, raw, error if reason == old else reason) for n, raw, reason in split.quarantine]
    return split
