"""Scoped API keys: who may ingest, who may read every customer, who may administer.

A key is `sbk_<key id>_<secret>`: the id is 16 hex characters and names the key's one
entry in the keys file, the secret is 32 random bytes in unpadded base64url. The file
(`STREAMBILL_API_KEYS_FILE`) holds one key per line,

    <key id> <scope> <name> <salt hex> <digest hex>

with `digest = HMAC-SHA256(salt, secret)`; `#` starts a comment, blank lines are
skipped. The secret itself is never stored: `create` prints it once. Keys are
high-entropy random secrets, so a salted HMAC is as good as a slow KDF and costs a
microsecond on the request path; the digest is compared in constant time.

Scopes (`GRANTS`): `ingest` posts usage only, `read` reads every customer, `admin`
does everything (it implies the other two). Several keys may share a scope; each
has a `name`, which logs show (never the secret).

Rotation without downtime: add the new key's line, move the clients over, delete the
old line. `KeyFile` notices a changed file (size, mtime or inode) at most
`check_every` seconds after the change and swaps in the new table at once; a file
that does not parse keeps the previous table (and logs why), so a half-written edit
never locks everybody out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

Scope = Literal["ingest", "read", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
GRANTS: Mapping[str, frozenset[str]] = {
    "ingest": frozenset({"ingest"}),
    "read": frozenset({"read"}),
    "admin": frozenset({"ingest", "read", "admin"}),
}
PREFIX = "sbk_"
_ID = re.compile(r"[0-9a-f]{16}")
_NAME = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")
_HEX = re.compile(r"[0-9a-f]{32,128}")
_MAX_KEY_CHARS = 200
_MEMO_SIZE = 4096
log = logging.getLogger("streambill.api")


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One line of the keys file. `grants` are the scopes it covers."""

    key_id: str
    scope: Scope
    name: str
    salt: bytes
    digest: bytes

    @property
    def grants(self) -> frozenset[str]:
        return GRANTS[self.scope]

    def line(self) -> str:
        return f"{self.key_id} {self.scope} {self.name} {self.salt.hex()} {self.digest.hex()}"


def _digest(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode("ascii"), hashlib.sha256).digest()


def create(name: str, scope: str) -> tuple[str, KeyEntry]:
    """A new key: (the key to hand to its client, its entry for the file).
    `ValueError` for a name outside `[A-Za-z0-9_.:@-]{1,64}` or an unknown scope."""
    if _NAME.fullmatch(name) is None:
        raise ValueError(f"key name {name!r}: use 1-64 of A-Z a-z 0-9 _ . : @ -")
    if scope not in SCOPES:
        raise ValueError(f"scope {scope!r}: one of {', '.join(SCOPES)}")
    key_id = secrets.token_hex(8)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")
    salt = secrets.token_bytes(16)
    entry = KeyEntry(key_id, scope, name, salt, _digest(salt, secret))
    return f"{PREFIX}{key_id}_{secret}", entry


def parse(text: str, source: str = "keys file") -> dict[str, KeyEntry]:
    """The entries of a keys file by key id; `ValueError` naming the first bad line
    (its number, never its content: it may be a pasted secret)."""
    entries: dict[str, KeyEntry] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 5:
            raise ValueError(f"{source} line {number}: expected 5 fields, found {len(fields)}")
        key_id, scope, name, salt, digest = fields
        if _ID.fullmatch(key_id) is None:
            raise ValueError(f"{source} line {number}: key id must be 16 hex characters")
        if scope not in SCOPES:
            raise ValueError(f"{source} line {number}: scope must be one of {', '.join(SCOPES)}")
        if _NAME.fullmatch(name) is None:
            raise ValueError(f"{source} line {number}: bad key name")
        if _HEX.fullmatch(salt) is None or len(digest) != 64 or _HEX.fullmatch(digest) is None:
            raise ValueError(f"{source} line {number}: salt and digest must be lowercase hex")
        if key_id in entries:
            raise ValueError(f"{source} line {number}: key id {key_id} appears twice")
        entries[key_id] = KeyEntry(key_id, scope, name, bytes.fromhex(salt), bytes.fromhex(digest))
    return entries


def split(presented: str) -> tuple[str, str] | None:
    """(key id, secret) of something shaped like a scoped key, else None."""
    if len(presented) > _MAX_KEY_CHARS or not presented.startswith(PREFIX):
        return None
    key_id, sep, secret = presented[len(PREFIX) :].partition("_")
    if not sep or _ID.fullmatch(key_id) is None or not secret or not secret.isascii():
        return None
    return key_id, secret


class KeyTable:
    """Entries by key id; `find` costs one lookup and one HMAC (or, for a key seen
    before, one lookup in a bounded memo of verified keys)."""

    def __init__(self, entries: Mapping[str, KeyEntry]) -> None:
        self._entries = dict(entries)
        self._verified: dict[str, KeyEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, presented: str) -> KeyEntry | None:
        entry = self._verified.get(presented)
        if entry is not None:
            return entry
        parts = split(presented)
        entry = self._entries.get(parts[0]) if parts else None
        if parts is None or entry is None:
            return None
        if not hmac.compare_digest(_digest(entry.salt, parts[1]), entry.digest):
            return None
        if len(self._verified) >= _MEMO_SIZE:
            self._verified.clear()
        self._verified[presented] = entry
        return entry


class KeyFile:
    """The keys of `path`, re-read when the file changes (checked at most every
    `check_every` seconds of `clock`). Construction reads it: a missing or malformed
    file is a `ValueError` then, so the API does not start on it."""

    def __init__(
        self,
        path: Path,
        *,
        check_every: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._check_every = check_every
        self._clock = clock
        self._stamp = self._stat()
        self.table = KeyTable(self._read())
        self._next_check = clock() + check_every

    def _stat(self) -> tuple[int, int, int]:
        try:
            st = self.path.stat()
        except OSError as exc:
            raise ValueError(f"STREAMBILL_API_KEYS_FILE {self.path}: {exc.strerror}") from exc
        return st.st_ino, st.st_size, st.st_mtime_ns

    def _read(self) -> dict[str, KeyEntry]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"STREAMBILL_API_KEYS_FILE {self.path}: {exc}") from exc
        return parse(text, f"STREAMBILL_API_KEYS_FILE {self.path}")

    def find(self, presented: str) -> KeyEntry | None:
        if self._clock() >= self._next_check:
            self.refresh()
        return self.table.find(presented)

    def refresh(self) -> None:
        """Re-read the file if it changed; keep the current keys if it cannot be read."""
        self._next_check = self._clock() + self._check_every
        try:
            stamp = self._stat()
            if stamp == self._stamp:
                return
            table = KeyTable(self._read())
        except ValueError as exc:
            log.error("api keys not reloaded, keeping the previous %d: %s", len(self.table), exc)
            return
        self._stamp, self.table = stamp, table
        log.info("api keys reloaded from %s: %d keys", self.path, len(table))
