"""Database URLs without their passwords, for every message that shows one.

A PostgreSQL URL carries its password in the userinfo
(`postgresql://user:pw@host/db`) or as a query parameter
(`postgresql://user@host/db?password=pw`), and libpq's key/value form as
`password=pw`. `redact` removes all three, also from URLs too malformed to
parse, and every password of a given URL (as written and percent-decoded)
from any text, such as a driver's error message that echoes the URL.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

__all__ = ["redact", "redacted_error"]

MASK = "***"
_USERINFO = re.compile(r"(://[^/?#@\s]*?:)([^@/?#\s]*)@")
_PARAMETER = re.compile(r"(?i)((?:^|[?&;\s])password\s*=\s*)('[^']*'|[^&;\s\"']*)")


def _passwords(url: str) -> set[str]:
    found = {m.group(2) for m in _USERINFO.finditer(url)}
    found |= {m.group(2).strip("'") for m in _PARAMETER.finditer(url)}
    found |= {unquote(p) for p in found}
    return {p for p in found if p}


def redact(text: str, url: str | None = None) -> str:
    """`text` without the passwords of `url` nor any URL's password in it."""
    for password in sorted(_passwords(url or ""), key=len, reverse=True):
        text = text.replace(password, MASK)
    text = _USERINFO.sub(rf"\g<1>{MASK}@", text)
    return _PARAMETER.sub(rf"\g<1>{MASK}", text)


def redacted_error(exc: BaseException, url: str) -> BaseException:
    """`exc`, or one of its type whose message no longer holds a password."""
    message = str(exc)
    clean = redact(message, url)
    if clean == message:
        return exc
    try:
        return type(exc)(clean)
    except Exception:
        return RuntimeError(clean)
