"""Every way the `titans` CLI can fail, as one line: an error code, what happened, and the next step.

The one home of the rule "failure -> code, message, next step" (plain Python, no Dagster import):
the CLI prints `Failure.line()` for whatever ends a command, `titans status` uses `check_failure` for a
failed check, and the runner hands its failed checks and failed steps to `run_failure`.

Codes (DESIGN.md): E001 database connection, E002 model registry / no champion, E003 invalid input
(the field, file and line are named), E004 rate limit and E005 authentication (the API's; the CLI
never calls the API). E000 is what is left: an unexpected error, i.e. a bug, with the way to report it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

NEXT_STEP = {
    "E000": "run the command again with TITANS_DEBUG=1 to see the traceback, and report it",
    "E001": "start the database or fix TITANS_DATABASE_URL (embedded server: its log is "
    "$TITANS_HOME/pgdata/log), then run the command again",
    "E002": "check that the MLflow registry answers (TITANS_MLFLOW_TRACKING_URI), or train a champion "
    "with `titans materialize`",
    "E003": "correct the named input and run the command again",
    "E004": "wait for the time the message names, then retry",
    "E005": "use one of the service's API keys (TITANS_API_KEYS / TITANS_API_KEY)",
}
CHECK_NEXT_STEP = (
    "fix or remove the named rows in the landing file (or the file itself) and run "
    "`titans materialize` again; `titans status` lists the failed checks"
)

_CODED = re.compile(r"^(E\d{3})\b[:\s]*(.*)$", re.S)
# A coded message among a step error's causes ("...\nRegistryError: E002 MLflow registry unreachable").
_CODED_CAUSE = re.compile(r"^(?:[\w.]+: )*(E\d{3}) (.*)$", re.M)
# Type names along an exception's chain that mean "the database is not there" (psycopg2 and SQLAlchemy
# OperationalError/InterfaceError, Dagster's storage giving up after its retries).
_DB_TYPES = {"DagsterPostgresException", "OperationalError", "InterfaceError"}
_DB_TEXT = re.compile(
    r"too many retries for DB (?:connection|creation)|could not connect to server|connection refused"
    r"|server closed the connection|terminating connection|connection to server .* failed"
    r"|the database system is (?:starting up|shutting down|in recovery mode)|connection already closed"
    r"|unexpected postmaster exit|no connection to the server|SSL connection has been closed",
    re.I,
)
_INPUT_TYPES = {
    "ContractError",
    "SettingsError",
    "DagsterInvalidAssetSelectionError",
    "DagsterInvalidSubsetError",
    "DagsterInvalidConfigError",
}
_REGISTRY_TYPES = {"RegistryError", "MlflowException", "RestException"}


@dataclass(frozen=True)
class Failure:
    code: str  # E000-E005
    message: str  # one line, without the code
    next_step: str

    def line(self) -> str:
        return f"{self.code} {self.message} -> next: {self.next_step}"


class CodedError(RuntimeError):
    """An exception that already knows its Failure (raised by the CLI for a failed run)."""

    def __init__(self, failure: Failure):
        super().__init__(failure.line())
        self.failure = failure
        self.code = failure.code


def _first_line(text: str, limit: int = 300) -> str:
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[0][:limit] if lines else ""


def _strip_module(text: str) -> str:
    """`dagster._core.errors.X: msg` -> `X: msg`."""
    return re.sub(r"^(?:[a-z_]\w*\.)+(\w+: )", r"\1", text)


def from_text(type_name: str, text: str, *, type_names: Iterable[str] = ()) -> Failure:
    """Classify a failure known by its type name(s) and message (an exception, or a step failure that
    Dagster serialized): the code it carries, else by what it says."""
    first = _first_line(text)
    names = {type_name, *type_names}
    m = _CODED.match(first) or _CODED_CAUSE.search(text or "")
    if m:
        code, rest = m.group(1), _first_line(m.group(2)) or type_name
        return Failure(code, rest, NEXT_STEP.get(code, NEXT_STEP["E000"]))
    if names & _DB_TYPES or _DB_TEXT.search(text or ""):
        detail = _strip_module(first) or type_name
        return Failure("E001", f"database connection failed: {detail}", NEXT_STEP["E001"])
    if names & _REGISTRY_TYPES:
        return Failure("E002", f"model registry: {first or type_name}", NEXT_STEP["E002"])
    if names & _INPUT_TYPES:
        return Failure("E003", f"invalid input: {_strip_module(first) or type_name}", NEXT_STEP["E003"])
    if names & {"FileNotFoundError", "IsADirectoryError", "NotADirectoryError", "PermissionError"}:
        return Failure(
            "E003",
            f"invalid input: {type_name}: {first}",
            "check the path and its permissions, then run the command again",
        )
    detail = _strip_module(first)
    body = f"{type_name}: {detail}" if detail and not detail.startswith(type_name) else (detail or type_name)
    return Failure("E000", f"unexpected error: {body}", NEXT_STEP["E000"])


def from_exception(exc: BaseException) -> Failure:
    """The Failure of an exception: its own (CodedError), its code attribute, or what its chain says."""
    if isinstance(exc, CodedError):
        return exc.failure
    chain: list[BaseException] = []
    seen = exc
    while seen is not None and seen not in chain and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    names = [type(e).__name__ for e in chain]
    for e in chain:  # an explicit code anywhere in the chain wins (DatabaseError raised inside a step)
        first = _first_line(str(e))
        code = getattr(e, "code", None)
        if _CODED.match(first):
            return from_text(type(e).__name__, first)
        if isinstance(code, str) and re.fullmatch(r"E\d{3}", code):
            return Failure(code, first or type(e).__name__, NEXT_STEP.get(code, NEXT_STEP["E000"]))
    text = "\n".join(str(e) for e in chain)
    failure = from_text(names[0], str(exc), type_names=names)
    if failure.code == "E000" and _DB_TEXT.search(text):
        return from_text(names[0], text, type_names=names)
    return failure


def server_failure(what: str, log_dir: str) -> Failure:
    """A server `titans up` started exited or never answered (`what` names it and ends with its log's
    last line): that line's own code when it has one (`error: E001 ...`), else E000; next, its log."""
    own = re.search(r"error: (E\d{3} .*)", what)
    code = from_text("ServerFailed", own.group(1) if own else what).code
    return Failure(
        code,
        f"a server failed: {_first_line(what, 600)}",
        f"read its log in {log_dir}, fix the cause and run `titans up` again",
    )


def usage_failure(message: str, command: str) -> Failure:
    """Bad arguments (click's usage errors): invalid input, with the option click named."""
    return Failure("E003", f"invalid input: {_first_line(message)}", f"see `{command} --help`")


# ---------------------------------------------------------------------------------------------- checks
def check_details(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """What a failed check's metadata says about why: the failing rules and, from the first rule's
    sample of offending rows, the file and line (GX suites record them; dbt tests name only the test).
    Keys: rules (list), rule, file, line, unexpected_count (each None when unknown)."""
    md = dict(metadata or {})
    rules = [str(r) for r in (md.get("failed_blocking") or [])]
    if not rules:
        rules = sorted(
            {
                k.split(".")[1]
                for k in md
                if k.startswith("failed.")
                and k.count(".") >= 1
                and md.get(f"failed.{k.split('.')[1]}.blocking", True) is not False
            }
        )
    out: dict[str, Any] = {
        "rules": rules,
        "rule": rules[0] if rules else None,
        "file": None,
        "line": None,
        "unexpected_count": None,
    }
    for rule in rules:
        sample = md.get(f"failed.{rule}.sample") or []
        for row in sample if isinstance(sample, list) else []:
            if isinstance(row, Mapping) and row.get("source_file") is not None:
                out.update(rule=rule, file=str(row["source_file"]), line=row.get("line_number"))
                out["unexpected_count"] = md.get(f"failed.{rule}.unexpected_count")
                return out
    if out["rule"]:
        out["unexpected_count"] = md.get(f"failed.{out['rule']}.unexpected_count")
    return out


def check_failure(check: str, metadata: Mapping[str, Any]) -> Failure:
    """A failed blocking check: E003 naming the check, the rule, the file and the line."""
    d = check_details(metadata)
    where = ""
    if d["file"]:
        where = f" in {d['file']}" + (f" line {d['line']}" if d["line"] is not None else "")
        n = d["unexpected_count"]
        if isinstance(n, int) and n > 1:
            where += f" (and {n - 1} more row{'s' if n > 2 else ''})"
    rules = d["rules"]
    rule = f": {rules[0]}{where}" if rules else ""
    more = f"; also {', '.join(rules[1:])}" if len(rules) > 1 else ""
    return Failure("E003", f"invalid input: check {check} failed{rule}{more}", CHECK_NEXT_STEP)


def run_failure(
    failed_checks: Mapping[str, Mapping[str, Any]], step_errors: Iterable[tuple[str, str]] = ()
) -> Failure:
    """A failed run: the database going away wins (nothing after it is trustworthy), then the first
    failed blocking check (E003, with its rule, file and line), then the first failed step."""
    steps = [from_text(cls_name, message) for cls_name, message in step_errors]
    for f in steps:
        if f.code == "E001":
            return f
    if failed_checks:
        first = sorted(failed_checks)[0]
        failure = check_failure(first, failed_checks[first])
        if len(failed_checks) > 1:
            others = ", ".join(sorted(failed_checks)[1:])
            failure = Failure(
                failure.code, f"{failure.message}; other failed checks: {others}", failure.next_step
            )
        return failure
    for f in steps:  # a blocking check's own step failure says nothing more than the check
        if "AssetCheckFailed" not in f.message:
            return f
    if steps:
        return steps[0]
    return Failure("E000", "the run failed without a reported cause", NEXT_STEP["E000"])
