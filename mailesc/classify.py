"""Who wrote a message, and does it count: customer, team, internal, auto-generated, spam or our own.

Everything here reads headers only (the hot path of a first sync), except bounce_in_body(), which looks at a
body only when the headers already hint that a machine wrote the message."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.parser import BytesParser
from email.policy import compat32
import fnmatch
from functools import cached_property

from mailesc.model import Kind, Message, RawMessage
from mailesc.parse import parse_message, readable_line_endings
from mailesc.signing import marker_is_ours
from mailesc.spam import SpamRules, spam_reason  # noqa: F401 (SpamRules: part of the classifier's API)

OWN_HEADER = "X-Mailesc"  # set on every mail mailesc sends, signed: how it recognises its own mail

# Subjects that machines write. Only the fixed forms: a customer may well write "Delivery failure for my order".
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:"
    # prefixes that servers and clients put before the original subject
    r"(?:undeliverable|undelivered|not delivered|automatic reply|auto[- ]?reply|auto[- ]?response|autoresponse"
    r"|out of (?:the )?office(?: reply| autoreply)?|abwesenheitsnotiz|automatische antwort"
    r"|r[ée]ponse automatique|respuesta autom[aá]tica|risposta automatica|automatisch antwoord"
    r"|returned mail|mail delivery failed|delivery failure|delivery status notification|non[- ]?delivery report"
    r"|warning: could not send message|delayed mail|delivery delayed)\s*:"
    # whole subjects of common bounces, delay notices and complaint reports
    r"|(?:undelivered mail returned to sender|failure notice|delivery status notification \((?:failure|delay)\)"
    r"|mail delivery (?:failed|failure|system error)[^:]*|returned mail|mail system error - returned mail"
    r"|message delivery failure|delivery notification: delivery has failed|non delivery report"
    r"|mail could not be delivered)\s*$"
    r"|complaint about message from \S+\s*$"
    # variants: Exchange's "Undeliverable:" in other languages, and more whole subjects of MTAs
    r"|(?:unzustellbar|nicht zustellbar|non remis|non distribuable|onbestelbaar|no se puede entregar"
    r"|n[ãa]o [ée] poss[íi]vel entregar|impossibile recapitare|olevererbart|kan ikke leveres|ikke leveret"
    r"|nie mo[żz]na dostarczy[ćc]|nedoru[čc]iteln[ée]|teslim edilemedi|配信不能|无法传递|無法傳遞|undeliverable mail"
    r"|undelivered mail|delivery status notification|delivery notification|mail delivery failure"
    r"|message delivery failure|permanent delivery failure|delivery failed|undeliverable message)\s*:"
    r"|(?:delayed mail \(still being retried\)|undeliverable (?:mail|message|e-?mail)|message not delivered"
    r"|mail not delivered|delivery status notification|permanent delivery failure|delivery failure notification"
    r"|mail delivery problem|non[- ]?deliverable (?:mail|message)|message delivery (?:has )?failed"
    r"|returned mail: .*|delivery (?:status )?notification(?: \([a-z ]+\))?|message delivery delayed"
    r"|undeliverable mail returned to sender|undelivered message returned to sender)\s*$"
    r"|warning: message \S+ delayed \d+ (?:hours?|days?|minutes?)\s*$"
    r")",
    re.IGNORECASE,
)
# Looser: bounce words anywhere. Only a hint (customers write "my delivery failed" too): the body must confirm.
_BOUNCE_WORDS = re.compile(
    r"undeliver|non[- ]?deliver|not (?:be )?delivered|delivery (?:status|fail|notification|report|problem|delay)"
    r"|returned (?:mail|message)|failure notice|delayed mail|mail delivery|zustellbar|non remis|onbestelbaar"
    r"|deliver\w* (?:has |have )?fail|mail (?:failure|failed|error|system error)|error mail|postmaster notify"
    r"|see transcript|could not send|error (?:sending|delivering)|недостав|не доставлено",
    re.IGNORECASE,
)
# Display names that MTAs give their notices.
_MAIL_SYSTEM_NAME = re.compile(
    r"^\s*(?:mail delivery (?:system|subsystem|sub-system|service)|mail ?administrator|mailer[- ]?daemon"
    r"|post ?master|mail system|mail delivery)\s*$", re.IGNORECASE)
_BOUNCE_SENDER = re.compile(r"^(?:mailer-daemon|post_?master|mail-daemon|bounces?|mailerdaemon"
                            r"|microsoftexchange[0-9a-f]{32})@", re.IGNORECASE)
_NOREPLY_SENDER = re.compile(r"^(?:no-?reply|do-?not-?reply|notifications?)[-+.@]", re.IGNORECASE)


def _header_is(name: str, pattern: str):
    regex = re.compile(pattern, re.IGNORECASE)

    def check(message: Message) -> str | None:
        for value in message.header_values(name):
            if regex.search(value):
                return f"{name}: {value[:60]}"
        return None

    check.header = name.lower()  # type: ignore[attr-defined]  # it says nothing about a message without it
    return check


def _header_present(name: str):
    def check(message: Message) -> str | None:
        return f"{name} present" if message.has_header(name) else None

    check.header = name.lower()  # type: ignore[attr-defined]
    return check


def _subject_looks_automatic(message: Message) -> str | None:
    return f"Subject: {message.subject[:60]}" if _AUTO_SUBJECT.search(message.subject) else None


def _sender_is_robot(message: Message) -> str | None:
    if "@" not in message.sender:
        return "no sender address"  # From: <> or none at all: nobody to answer
    if _BOUNCE_SENDER.search(message.sender) or _NOREPLY_SENDER.search(message.sender):
        return f"From: {message.sender}"
    if message.sender_name and _MAIL_SYSTEM_NAME.match(message.sender_name):
        return f"From: {message.sender_name[:60]} (a mail system's name)"
    return None


# Each predicate answers "why is this auto-generated?" or None. Order is only the order of the reasons shown.
AUTO_PREDICATES = (
    _header_is("auto-submitted", r"^\s*(?!no\b)\S"),  # RFC 3834: anything but "no"
    _header_present("x-autoreply"),
    _header_present("x-autorespond"),
    _header_present("x-autogenerated"),
    _header_is("x-auto-reply", r"\S"),
    _header_is("x-apple-action", r"vacation"),
    _header_is("precedence", r"^\s*(bulk|junk|list|auto_reply)\b"),
    _header_present("list-id"),
    _header_present("list-unsubscribe"),
    _header_present("x-mlserver"),  # fml and other list servers, also for their loop alerts
    _header_is("content-type", r"^\s*multipart/report\b"),
    _header_is("content-type", r"^\s*message/(delivery-status|disposition-notification|feedback-report)\b"),
    _header_is("return-path", r"^\s*<\s*>\s*$"),
    _header_present("x-failed-recipients"),
    _header_is("x-ms-exchange-generated-message-source", r"\S"),
    _sender_is_robot,
    _subject_looks_automatic,
)

# Each predicate with the header it reads (None: it reads no header, or more than one), so that the checks of
# headers a message does not have are not even called (most messages have none of them): the same reasons
# in the same order (tests/unit/test_classify_shortcuts.py compares it with every predicate called, on the corpora).
_AUTO_CHECKS = tuple((getattr(check, "header", None), check) for check in AUTO_PREDICATES)


def auto_generated_reason(message: Message, data: bytes | None = None) -> str | None:
    """Why `message` was written by a machine, or None for a message a person wrote.

    From the headers; with the whole message in `data`, also from the body's structure, but only when the
    headers already hint at a machine (a bounce forwarded or with an unusual subject): reading bodies is
    slow and a person's mail never needs it."""
    present, reason = message.header_names(), None
    for header, check in _AUTO_CHECKS:
        if (header is None or header in present) and (reason := check(message)):
            break
    if reason is None and data is not None and machine_hint(message):
        reason = bounce_in_body(data)
    return reason


def machine_hint(message: Message) -> bool:
    """Whether the headers hint that a machine wrote `message` without saying so for sure: a bounce's words
    in the subject. Only then is the body worth reading."""
    return bool(_BOUNCE_WORDS.search(message.subject))


_REPORT_PARTS = ("message/delivery-status", "message/global-delivery-status", "message/feedback-report",
                 "text/rfc822-headers", "message/global-headers")
# What MTAs write into bounce and delay notices (Postfix, Exim, Sendmail, qmail, Exchange, Gmail, Domino, ...),
# and SMTP replies with an enhanced status code ("550 5.1.1", "550-5.7.26"). Looked for only after the headers
# hinted at a bounce, and never phrases a person writes about a parcel ("could not be delivered to my door").
_MTA_PHRASES = re.compile(
    r"\b[45]\d\d[ -]#?[245]\.\d{1,3}\.\d{1,3}\b"
    r"|this is the (?:mail system|postfix program|mailer-daemon|qmail-send program|dragonfly mail agent)"
    r"|i'?m sorry to have to inform you that (?:your message|the message)|mail delivery software"
    r"|a message that you sent (?:could not be delivered|contained one or more recipient)"
    r"|delivery to the following recipients? (?:failed|has been delayed)|the original message was received at"
    r"|the following addresses had (?:permanent )?fatal errors|transcript of session follows"
    r"|there was an error delivering your mail|error has occurred while attempting to deliver"
    r"|unable to deliver (?:the )?message to|delivery failed for the following reason|no further delivery attempts"
    r"|did not reach the following recipient|could not be delivered to one or more (?:recipients|destinations)"
    r"|rejected by a remote mail server|smtp error from remote mail server|retry (?:time(?:out)?|timeout) exceeded"
    r"|unrouteable (?:mail )?domain|user unknown in (?:local|virtual)|(?:^|\n)\s*unknown user:"
    r"|delivery has failed to these recipients or groups|the following message to <[^>]*> was undeliverable"
    r"|automatically generated delivery status notification|this is an automated (?:alert|message|notification)"
    r"|(?:original message|message headers) follows?\b|below is a copy of the original message"
    r"|this is a copy of (?:your|the) message|-{3,} ?(?:returned message|failure reasons) ?-{3,}"
    r"|(?:^|\n)\s*(?:final-recipient|diagnostic-code|original-recipient)\s*:\s*\S",
    re.IGNORECASE,
)
BODY_BYTES = 256 * 1024  # a bounce says what it is at its start; a huge message is not read to its end
_BODY_PARSER = BytesParser(policy=compat32)
_ANY_TIME = datetime(1970, 1, 1, tzinfo=timezone.utc)  # an attached message's time decides nothing here


def _forwarded_notice(part) -> str | None:
    """Why the message attached in `part` (a forward) was written by a machine, from its headers; or None."""
    inner = part.get_payload()
    inner = inner[0] if isinstance(inner, list) and inner else inner
    try:
        message = parse_message(RawMessage(key="attached", folder="", data=inner.as_bytes(), arrived=_ANY_TIME),
                                _ANY_TIME)
    except Exception:  # an attachment that is no message is no evidence
        return None
    return auto_generated_reason(message)  # its headers only: a forward inside a forward is not followed


def bounce_in_body(data: bytes) -> str | None:
    """Why the body shows a bounce or delay notice (also one forwarded inside another message), or None:
    an RFC 3464 report part, or the wording of an MTA in a text part."""
    try:
        root = _BODY_PARSER.parsebytes(readable_line_endings(data[:BODY_BYTES]))
        parts = list(root.walk())
    except Exception:  # a broken structure is no evidence either way
        return None
    for part in parts:
        kind = part.get_content_type()
        if kind in _REPORT_PARTS:
            return f"a {kind} part in the body"
        if kind == "message/rfc822" and (reason := _forwarded_notice(part)):
            return f"a forwarded notice ({reason})"
    for part in parts:
        if part.get_content_maintype() != "text" or part.is_multipart():
            continue
        try:
            payload = part.get_payload(decode=True) or b""
        except Exception:
            continue
        if not isinstance(payload, bytes):  # decoding a text part gives bytes; anything else has no wording
            continue
        match = _MTA_PHRASES.search(payload[:32 * 1024].decode("utf-8", "replace"))
        if match:
            return f"a mail system's wording in the body: {' '.join(match.group(0).split())[:60]!r}"
    return None


@dataclass(frozen=True)
class People:
    """Who is who: the team's addresses (with *@domain wildcards) and the escalation recipients."""

    team: tuple[str, ...]
    managers: tuple[str, ...] = ()  # escalation recipients: mail only to them is internal
    own_address: str = ""
    secret: bytes = field(default=b"", repr=False)  # signs the X-Mailesc marker (signing.py)

    def is_team(self, address: str) -> bool:
        return self._team_pattern.match(address.lower()) is not None

    @cached_property
    def _team_pattern(self) -> re.Pattern:
        """The team's patterns as one regular expression: what fnmatchcase() says for any of them, asked of
        every message's sender and recipients (test_classify_shortcuts.py compares both on a table)."""
        return re.compile("|".join(f"(?:{fnmatch.translate(pattern)})" for pattern in self.team) or "(?!)")

    def is_internal(self, address: str) -> bool:
        return self.is_team(address) or address.lower() in self.managers or address.lower() == self.own_address


def is_own(message: Message, people: People) -> bool:
    """mailesc's own mail: an X-Mailesc marker signed with this installation's secret (anybody can write
    the header; only mailesc can sign it), or mail from mailesc's own address (which also keeps the mails
    sent with an older, unsigned marker recognised)."""
    if people.own_address and message.sender == people.own_address:
        return True
    marker = message.header(OWN_HEADER)
    return marker is not None and marker_is_ours(people.secret, marker, message.message_id)


def classify(message: Message, people: People, spam: "SpamRules | None" = None, data: bytes | None = None) -> Kind:
    """What `message` is; `data` (the whole message, where the source has it) lets a bounce be recognised
    by its body when the headers hint at one."""
    if is_own(message, people):
        return Kind.OWN
    if spam_reason(message, spam):
        return Kind.SPAM
    if auto_generated_reason(message, data):
        return Kind.AUTO
    if not people.is_internal(message.sender):  # managers write as the team does
        return Kind.CUSTOMER
    if message.recipients and all(people.is_internal(address) for address in message.recipients):
        return Kind.INTERNAL
    return Kind.TEAM
