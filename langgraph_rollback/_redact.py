"""Database URLs without their passwords, for every message that shows one.

A PostgreSQL URL carries its password in the userinfo
(`postgresql://user:pw@host/db`) or as a query parameter
(`postgresql://user@host/db?password=pw`, also `sslpassword=` and
percent-encoded keys such as `%70assword=`), and libpq's key/value form as
`password=pw` or `password='p\\'w'`. `redact` removes them all, also from
URLs too malformed to parse, and every password of a given URL (as written,
unescaped and percent-decoded) from any text, such as a driver's error
message that echoes the URL. When in doubt it removes more: the userinfo
runs to the last `@` of the URL, so a password holding an unencoded `@`,
`/` or `#` goes whole.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

__all__ = ["redact", "redacted_error"]

MASK = "***"
_URL = re.compile(r"://(\S*)@(\S*)")
"""A URL's userinfo (from `://` to the last `@` before the next space) and
the rest of the URL."""
_PARAMETER = re.compile(
    r"(?P<key>(?:^|(?<=[?&;\s]))[^\s=&?;]+\s*=\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*(?:'|\\?$)|(?:[^\s&\\]|\\.)*\\?)",
    re.DOTALL,
)
"""`key=value` with `value` bare or quoted, backslash escapes included."""
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_DELIMITER = re.compile(r"[@/#?:]")
"""Where a parser may cut an unencoded password; each piece gets echoed."""
_SHORTEST_PIECE = 3


def _is_secret(key: str) -> bool:
    """Whether a parameter named `key` (as written) may hold a password."""
    return "pass" in unquote(key.split("=")[0].strip()).lower()


def _userinfo(match: re.Match[str]) -> tuple[str, str]:
    """What of a `_URL` match to keep and what is the password."""
    userinfo = match.group(1)
    try:
        urlsplit(f"x://{userinfo}@{match.group(2)}")
    except ValueError:
        return "", userinfo
    user, colon, password = userinfo.partition(":")
    return (user + colon, password) if colon else (userinfo, "")


def _passwords(url: str) -> set[str]:
    found = {m.group(1).partition(":")[2] for m in _URL.finditer(url)}
    for m in _PARAMETER.finditer(url):
        if _is_secret(m.group("key")):
            value = m.group("value")
            inner = value[1:-1] if value[:1] == "'" else value
            found |= {value, inner, _ESCAPE.sub(r"\1", inner)}
    found |= {unquote(p) for p in found}
    pieces = {q for p in found for q in _DELIMITER.split(p)}
    found |= {q for q in pieces if len(q) >= _SHORTEST_PIECE}
    return {p for p in found if p}


def _mask_userinfo(match: re.Match[str]) -> str:
    keep, password = _userinfo(match)
    mask = MASK if password or not keep else ""
    return f"://{keep}{mask}@{match.group(2)}"


def _mask_parameter(match: re.Match[str]) -> str:
    if not _is_secret(match.group("key")):
        return match.group(0)
    return match.group("key") + MASK


def redact(text: str, url: str | None = None) -> str:
    """`text` without the passwords of `url` nor any URL's password in it."""
    for password in sorted(_passwords(url or ""), key=len, reverse=True):
        text = text.replace(password, MASK)
    text = _URL.sub(_mask_userinfo, text)
    return _PARAMETER.sub(_mask_parameter, text)


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
