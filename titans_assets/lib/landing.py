"""What changed in the landing folder, for the landing sensor (pure: no Dagster, no database).

The sensor compares the files on disk with what the warehouse says it loaded (raw.files: key ->
sha256), so a file that `titans demo` or `titans materialize` already loaded asks for nothing, and a
file whose bytes change asks for exactly one run. Run keys name the transition (new bytes and the
bytes they replace), so duplicate runs are impossible while a change that is undone and redone
(A -> B -> A) still gets its run.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from titans_assets.lib.loader import landing_files, source_file_key

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Change:
    key: str  # the file's path relative to the landing folder (the partition key)
    kind: str  # "new" | "changed" | "removed"
    sha256: str | None  # of the bytes on disk (None when removed)
    run_key: str


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def scan(
    landing_dir: Path, cache: dict[str, list], settle_seconds: float = 5.0, now: float | None = None
) -> tuple[dict[str, str], set[str], dict[str, list]]:
    """Hash the landing folder's CSVs, re-reading only files whose size or mtime changed.

    Returns (present: key -> sha256, settling: keys modified within `settle_seconds` and therefore
    not yet hashed — a copy may still be in progress —, the new cache: key -> [size, mtime_ns, sha256]).
    """
    now = time.time() if now is None else now
    present, settling, new_cache = {}, set(), {}
    for path in landing_files(landing_dir):
        key = source_file_key(landing_dir, path)
        try:
            st = path.stat()
        except FileNotFoundError:  # removed between listing and stat
            continue
        if now - st.st_mtime < settle_seconds:
            settling.add(key)
            continue
        cached = cache.get(key)
        if cached and cached[0] == st.st_size and cached[1] == st.st_mtime_ns:
            sha = cached[2]
        else:
            sha = sha256_of(path)
        present[key] = sha
        new_cache[key] = [st.st_size, st.st_mtime_ns, sha]
    return present, settling, new_cache


def run_key(key: str, sha256: str | None, loaded_sha256: str | None) -> str:
    return f"landing:{key}@{(sha256 or 'removed')[:16]}<-{(loaded_sha256 or 'none')[:16]}"


def plan(
    present: dict[str, str],
    loaded: dict[str, str],
    requested: dict[str, str],
    settling: set[str] = frozenset(),
) -> list[Change]:
    """The loads to request: files new or changed on disk vs the warehouse, and loaded files that
    left the folder (their rows are removed), minus transitions already requested (`requested`:
    key -> run key of the last request for that file)."""
    changes = []
    for key, sha in sorted(present.items()):
        was = loaded.get(key)
        if was == sha:
            continue
        changes.append(Change(key, "new" if was is None else "changed", sha, run_key(key, sha, was)))
    for key, was in sorted(loaded.items()):
        if key not in present and key not in settling:
            changes.append(Change(key, "removed", None, run_key(key, None, was)))
    return [c for c in changes if requested.get(c.key) != c.run_key]


def batches(changes: list[Change], partition_order: list[str]) -> list[list[Change]]:
    """Group changes whose files are adjacent partitions, so one run loads each group (a run covers a
    contiguous range of partitions; new files are added at the end, in order, so a batch of new
    exports is one run and one dbt build, not one per file). Every file in a group changed."""
    position = {key: i for i, key in enumerate(partition_order)}
    groups: list[list[Change]] = []
    for change in sorted(changes, key=lambda c: position[c.key]):
        if groups and position[change.key] == position[groups[-1][-1].key] + 1:
            groups[-1].append(change)
        else:
            groups.append([change])
    return groups


def batch_run_key(group: list[Change]) -> str:
    """One change keeps its own run key; a batch's key is a digest of its members' keys."""
    if len(group) == 1:
        return group[0].run_key
    digest = hashlib.sha256("\n".join(c.run_key for c in group).encode()).hexdigest()[:24]
    return f"landing:{group[0].key}..{group[-1].key}#{len(group)}:{digest}"


def partition_sync(
    known: list[str], wanted: list[str], on_disk: set[str], loaded: set[str], keep: set[str] = frozenset()
) -> tuple[list[str], list[str]]:
    """The file partitions to add and to delete, for the CLI's runs and the landing sensor alike.

    `wanted`: files a run is about to load (in order), which need a partition; `known`: the partitions
    that exist. A file that left the folder keeps its partition while the warehouse still holds its rows
    (the run that removes them needs it) and is deleted after; `keep` holds files not to judge yet (the
    sensor's files still being copied)."""
    have = set(known)
    add = [k for k in dict.fromkeys(wanted) if k not in have]
    stale = sorted(have - on_disk - loaded - set(keep) - set(wanted))
    return add, stale


def loaded_checksums(db) -> dict[str, str]:
    """key -> sha256 of every file the warehouse holds (raw.files); empty before the first load."""
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('raw.files') IS NOT NULL")
        if not cur.fetchone()[0]:
            return {}
        cur.execute("SELECT source_file, sha256 FROM raw.files")
        return dict(cur.fetchall())
