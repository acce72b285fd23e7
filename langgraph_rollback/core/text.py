"""Shortening values for messages, without cutting a path mid-word."""

from __future__ import annotations

__all__ = ["clip"]


def clip(text: str, width: int) -> str:
    """`text` cut to about `width` characters at a separator, then `...`."""
    if len(text) <= width:
        return text
    cut = text[: width - 3]
    at = max(cut.rfind(sep) for sep in "/ ,_-.")
    if at >= width // 2:
        cut = cut[: at + 1]
    return cut + "..."
