"""When a message the mail server let through counts as spam: the verdict headers spam filters write, a score
above the operator's threshold, or the operator's own (header, pattern) pairs ([classify] in the config).

A module of its own, apart from classify.py, because the config reads SpamRules: commands that only read the
config (status, breaches list) need not load the classifier and the parser behind it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailesc.model import Message

_YES = re.compile(r"^\s*yes\b", re.IGNORECASE)
# The verdicts spam filters write into a message they let through.
_SPAM_VERDICTS = (
    ("X-Spam-Flag", _YES),  # SpamAssassin
    ("X-Spam-Status", _YES),  # SpamAssassin: "Yes, score=7.1 required=5.0 ..."
    ("X-Spam", _YES),  # rspamd's milter headers
    ("X-Rspamd-Action", re.compile(r"^\s*(?:reject|add[ _]header|rewrite[ _]subject)\s*$", re.IGNORECASE)),
)
_NUMBER = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)")
_STATUS_SCORE = re.compile(r"\b(?:score|hits)=([-+]?\d+(?:\.\d+)?)", re.IGNORECASE)
_STARS = re.compile(r"^\s*(\*+)\s*$")


def _score(name: str, value: str) -> float | None:
    """The spam score a header carries: a number, score= in X-Spam-Status, or X-Spam-Level's stars."""
    if name == "X-Spam-Level":
        match = _STARS.match(value)
        return float(len(match.group(1))) if match else None
    match = (_STATUS_SCORE.search if name == "X-Spam-Status" else _NUMBER.match)(value)
    return float(match.group(1)) if match else None


_SCORE_HEADERS = ("X-Spam-Score", "X-Spam-Level", "X-Spam-Status", "X-Rspamd-Score")


@dataclass(frozen=True)
class SpamRules:
    """When a message the server let through counts as spam ([classify] in the config): a filter's verdict
    header, a score at or above `threshold`, or one of the operator's (header name, pattern) pairs.

    Scores count only with a threshold the operator chose: a filter that wrote "No, score=7.1 required=15.0"
    decided, and a customer's mail is never dropped on a guess."""

    threshold: float | None = None
    headers: tuple[tuple[str, re.Pattern], ...] = ()

    @cached_property
    def _names(self) -> frozenset[str]:
        """The lower-case names of every header these rules read."""
        scores = _SCORE_HEADERS if self.threshold is not None else ()
        return frozenset(name.lower() for name in (*(name for name, _ in (*_SPAM_VERDICTS, *self.headers)), *scores))

    def reason(self, message: Message) -> str | None:
        if self._names.isdisjoint(message.header_names()):
            return None  # none of the headers it reads is there (nearly every message): no lookups one by one
        for name, pattern in (*_SPAM_VERDICTS, *self.headers):
            for value in message.header_values(name) if message.has_header(name) else ():
                if pattern.search(value):
                    return f"{name}: {value[:60]}"
        if self.threshold is not None:
            for name in _SCORE_HEADERS:
                for value in message.header_values(name) if message.has_header(name) else ():
                    score = _score(name, value)
                    if score is not None and score >= self.threshold:
                        return f"{name}: {value[:60]} (score {score:g}, spam from {self.threshold:g})"
        return None


DEFAULT_SPAM = SpamRules()


def spam_reason(message: Message, spam: SpamRules | None = None) -> str | None:
    """Why `message` counts as spam, or None."""
    return (spam or DEFAULT_SPAM).reason(message)
