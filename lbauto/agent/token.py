"""Reading and checking the agent's bearer token (the agent and its clients share this).

A token is one line of printable ASCII without spaces, at least :data:`MIN_TOKEN_LENGTH`
characters. Messages name where the token comes from and what is wrong with it, never the
token or any other content of the file: a ``token_file`` that points at the wrong file must not
print that file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from lbauto.errors import ConfigError

MIN_TOKEN_LENGTH = 16
#: A token file is one short line; a bigger file is the wrong file (and is not read whole).
MAX_TOKEN_FILE_BYTES = 4096
TOKEN_FIX = "write one line of at least 16 printable ASCII characters, e.g. `openssl rand -hex 32`"


def token_problem(raw: bytes) -> str | None:
    """Why ``raw`` (the bytes of a token source) is not a usable token, or None."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as e:
        return f"has a non-ASCII byte at offset {e.start}"
    token = text.strip()
    if not token:
        return "is empty"
    if "\n" in token or "\r" in token:
        return "holds more than one line"
    bad = next((i for i, c in enumerate(token) if not "\x21" <= c <= "\x7e"), None)
    if bad is not None:
        return f"has a space or control character at position {bad + 1}"
    if len(token) < MIN_TOKEN_LENGTH:
        return f"is {len(token)} characters long, shorter than {MIN_TOKEN_LENGTH}"
    return None


def check_token(raw: bytes, source: str) -> str:
    """The token in ``raw``, or ConfigError naming ``source`` (never the content)."""
    problem = token_problem(raw)
    if problem is not None:
        raise ConfigError(f"{source}: the token {problem} ({TOKEN_FIX})")
    return raw.decode("ascii").strip()


def read_token_file(path: Path) -> str:
    """The token in ``path``: a regular file of at most MAX_TOKEN_FILE_BYTES, one line."""
    source = f"token_file {path}"
    try:
        # O_NONBLOCK: a FIFO or device named by mistake must not hang the start
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ConfigError(f"{source}: not a regular file ({TOKEN_FIX})")
            raw = f.read(MAX_TOKEN_FILE_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{source}: cannot read: {e.strerror}") from e
    if len(raw) > MAX_TOKEN_FILE_BYTES:
        raise ConfigError(
            f"{source}: larger than {MAX_TOKEN_FILE_BYTES} bytes, so not a token file ({TOKEN_FIX})"
        )
    return check_token(raw, source)


def read_token_env(name: str) -> str:
    """The token in environment variable ``name``."""
    value = os.environb.get(name.encode(), b"")
    return check_token(value, f"environment variable {name} (token_env)")


def world_readable(path: Path) -> bool:
    """True if other users may read ``path`` (the agent warns: a token must stay private)."""
    try:
        return bool(path.stat().st_mode & stat.S_IROTH)
    except OSError:
        return False
