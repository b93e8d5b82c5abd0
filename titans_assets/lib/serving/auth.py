"""API keys: `Authorization: Bearer <key>` on every prediction and management route (E005 otherwise).

Keys come from TITANS_API_KEYS (comma-separated keys) and/or TITANS_API_KEYS_FILE (one SHA-256 hex
digest of a key per line; `#` comments and blank lines ignored), so a deployment need not hold the
keys themselves. Only digests are kept in memory; a presented key is hashed and compared with every
digest with `hmac.compare_digest` (no early exit, so the time does not tell which key nearly matched).
There is no built-in key: `titans serve --dev` generates one and prints it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
MIN_KEY_LENGTH = 16


class KeyConfigError(ValueError):
    code = "E005"


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def hash_key(key: str) -> str:
    """What goes into a TITANS_API_KEYS_FILE line."""
    return digest(key).hex()


@dataclass(frozen=True)
class KeyRing:
    digests: tuple[bytes, ...]

    @classmethod
    def from_env(cls, environ: dict[str, str]) -> KeyRing:
        found: list[bytes] = []
        for key in (environ.get("TITANS_API_KEYS") or "").split(","):
            key = key.strip()
            if not key:
                continue
            if len(key) < MIN_KEY_LENGTH:
                raise KeyConfigError(
                    f"E005 TITANS_API_KEYS: every key needs at least {MIN_KEY_LENGTH} characters"
                )
            found.append(digest(key))
        path = environ.get("TITANS_API_KEYS_FILE")
        if path:
            found.extend(read_key_file(Path(path)))
        return cls(tuple(dict.fromkeys(found)))

    def __bool__(self) -> bool:
        return bool(self.digests)

    def identify(self, key: str) -> str | None:
        """The key's id (first 16 hex digits of its digest, safe to log and to use as a rate-limit
        key) if the key is known, else None."""
        presented = digest(key)
        match = False
        for known in self.digests:
            match |= hmac.compare_digest(presented, known)
        return presented.hex()[:16] if match else None


def read_key_file(path: Path) -> list[bytes]:
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise KeyConfigError(f"E005 TITANS_API_KEYS_FILE {path}: {exc.strerror or exc}") from None
    out = []
    for n, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if not _HEX64.fullmatch(line):
            raise KeyConfigError(
                f"E005 TITANS_API_KEYS_FILE {path} line {n}: expected a SHA-256 hex digest "
                "(`titans serve --hash-key KEY` prints one)"
            )
        out.append(bytes.fromhex(line))
    return out


def bearer_token(header: str | None) -> str | None:
    """The key of an `Authorization: Bearer <key>` header, else None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None
