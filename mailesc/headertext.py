"""Header values as text: RFC 2047 words decoded, undecodable bytes replaced, control characters removed.

Shared by parsing (the few headers mailesc always needs) and Message.header() (the rest, decoded only when
something asks for them: most headers of most messages are never read)."""

from __future__ import annotations

import re
from email.errors import HeaderParseError
from email.header import decode_header

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_SPACES = re.compile(r"\s{2,}")
_SURROGATES = re.compile("[\ud800-\udfff]")
_LONE_SURROGATES = re.compile("[\ud800-\udc7f\udd00-\udfff]")  # from odd charsets (UTF-7): never encodable


def header_text(value: str) -> str:
    """A raw header value as clean text, safe to show and to put into an outgoing header."""
    return clean(decode(value))


def decode(value) -> str:
    """A header value as text: RFC 2047 words decoded (bad bytes replaced), raw 8-bit read as UTF-8."""
    text = readable(str(value))
    if "=?" not in text:
        return text  # no RFC 2047 encoded word: nothing to decode (the common case, and a hot path)
    try:
        parts = decode_header(text)
    except (ValueError, AssertionError, HeaderParseError):
        return text
    return readable("".join(_decode_part(chunk, charset) for chunk, charset in parts))


def _decode_part(chunk: bytes | str, charset: str | None) -> str:
    if isinstance(chunk, str):
        return chunk
    try:
        return chunk.decode(charset or "ascii", "replace")
    except LookupError:  # an unknown charset: UTF-8 is the best guess today
        return chunk.decode("utf-8", "replace")


def readable(text: str) -> str:
    """Undo surrogate escapes (undecodable bytes) and replace lone surrogates, so the text can be encoded
    again (a name decoded from UTF-7 could otherwise not even be written to the store)."""
    if _SURROGATES.search(text):
        text = _LONE_SURROGATES.sub("\ufffd", text)
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text


def clean(text: str) -> str:
    """No control characters (CR/LF included), single spaces: safe to put into an outgoing header."""
    if text.isprintable() and "  " not in text:
        return text.strip()  # the common case, checked at C speed
    return _SPACES.sub(" ", _CONTROL.sub(" ", text)).strip()
