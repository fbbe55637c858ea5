"""Composing mailesc's mails: every Message-ID it gives, the auto-mail headers, what templates get to know
about a thread (its context, the excerpt of the customer's message) and which of its messages are attached.

One room for it so that escalations, warnings, acknowledgements, storm-control digests and the daily digest
are built alike: the outbox decides when a mail goes, `daily.py` decides when the daily digest is due, and both
ask this module for the mail. Templates and MIME building stay in `render.py`; this module knows mailesc's
rules for a mail (signed ids and markers, RFC 3834 for what goes to a customer), render.py knows MIME."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from datetime import date, datetime, timedelta, timezone, tzinfo

from mailesc.clock import isoformat
from mailesc.errors import SourceError
from mailesc.humane import format_span, human_time
from mailesc.model import (DEFAULT_MAILBOX, Attachment, Breach, Kind, OutgoingMail, QueuedMail, Thread, ThreadMessage,
                           WebhookPost)
from mailesc.parse import clean
from mailesc.render import ATTACHMENT_BUDGET, Templates, build_mail
from mailesc.signing import mail_message_id, signed_marker

logging.getLogger("mailparser").setLevel(logging.ERROR)  # it warns about every MIME part it skips
EXCERPT_CHARS = 600
QUOTE_LIMIT = 5 * 1024 * 1024  # a first message larger than this is not fetched just to quote its start
DIGEST_REFERENCES = 50  # escalation Message-IDs a storm-control digest refers to at most


# -- Message-IDs --------------------------------------------------------------------------------------------------

def thread_mail_id(secret: bytes, thread: Thread, what: str, own_address: str) -> str:
    """The signed Message-ID of a mail about `thread`: the same for the same mail whenever it is composed
    (a resend after a crash is the same mail), different for each mailbox's thread of the same root id."""
    ref = thread.id if thread.mailbox == DEFAULT_MAILBOX else f"{thread.mailbox}\n{thread.id}"
    return mail_message_id(secret, ref, what, own_address)


def escalation_mail_id(secret: bytes, thread: Thread, clock: int, level: int, own_address: str) -> str:
    """A level's escalation of one clock of `thread`: "L1" for the first response, "N2L1" for the second next."""
    return thread_mail_id(secret, thread, f"{_clock_mark(clock)}L{level}", own_address)


def webhook_post_id(secret: bytes, thread: Thread, clock: int, level: int, target: str, own_address: str) -> str:
    """A level's post to a webhook ("webhook:ops"): stable like its mail's Message-ID, so that a crash between
    recording and posting posts this very record again, never a second one."""
    return thread_mail_id(secret, thread, f"{_clock_mark(clock)}L{level}P{target.partition(':')[2]}", own_address)


def warning_mail_id(secret: bytes, thread: Thread, own_address: str) -> str:
    return thread_mail_id(secret, thread, "W", own_address)


def ack_mail_id(secret: bytes, thread: Thread, own_address: str) -> str:
    return thread_mail_id(secret, thread, "A", own_address)


def digest_message_id(message_ids: Iterable[str], sender: str) -> str:
    """A storm-control digest's id: stable for the same escalations, so a retried digest keeps its Message-ID."""
    digest = hashlib.sha256(" ".join(sorted(message_ids)).encode()).hexdigest()[:20]
    return f"<mailesc.digest.{digest}@{_domain(sender)}>"


def daily_message_id(day: date, sender: str) -> str:
    """The daily digest's id: one per day, so a resend after a crash is the same mail."""
    return f"<mailesc.daily.{day.isoformat()}@{_domain(sender)}>"


def _domain(sender: str) -> str:
    return sender.rpartition("@")[2].rstrip(">") or "mailesc.invalid"


def _clock_mark(clock: int) -> str:
    """"" for the first-response clock (its mails keep the simplest ids), "N2" for the second next response."""
    return f"N{clock}" if clock else ""


# -- headers -------------------------------------------------------------------------------------------------------

def auto_headers(marker: str, *, secret: bytes | None = None, message_id: str = "", reply_to: str = "") -> dict:
    """The headers of every mail mailesc writes on its own (RFC 3834 Auto-Submitted; no out-of-office replies
    from Exchange), its X-Mailesc marker (signed for `message_id` when a secret is given, so that nobody else
    can write one that counts) and the Reply-To of the installation, if any."""
    headers = {"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All",
               "X-Mailesc": signed_marker(secret, marker, message_id) if secret is not None else marker}
    if reply_to:
        headers["Reply-To"] = reply_to
    return headers


def ack_headers(marker: str, reply_to: str = "") -> dict:
    """An acknowledgement goes to a customer: an RFC 3834 auto-reply, and its marker is never signed (a
    signature the customer could copy onto a mail of theirs). Its envelope sender is null (see ACK_SENDER)."""
    headers = auto_headers(marker, reply_to=reply_to)
    headers["Auto-Submitted"] = "auto-replied"
    return headers


ACK_SENDER = ""  # the null envelope sender of an RFC 3834 auto-reply: nothing bounces back to the customer


# -- the mails -----------------------------------------------------------------------------------------------------

@dataclass
class Composer:
    """Who writes and how: the templates, the From and Reply-To addresses, the secret that signs, the policies
    (rule order for digests, each rule's calendar zone) and [templates] timezone, which overrides the zones."""

    templates: Templates
    sender: str
    reply_to: str = ""
    secret: bytes = b""
    policies: Any = None  # mailesc.policies.Policies
    zone: tzinfo | None = None

    def zone_of(self, thread: Thread) -> tzinfo:
        """Where times in a mail about `thread` are told: [templates] timezone, else its rule's calendar zone."""
        rule = self.policies.get(thread.policy) if self.policies is not None and thread.policy else None
        return self.zone or (rule.calendar.zone if rule else timezone.utc)

    def priority(self, policy: str | None) -> int:
        """A rule's place in the policies (the first rule is the most important); unknown rules last."""
        names = [rule.name for rule in self.policies.rules] if self.policies is not None else []
        return names.index(policy) if policy in names else len(names)

    def thread_mail(self, *, kind: str, message_id: str, to: list[str], template: str, thread: Thread,
                    now: datetime, fetch: Callable[[set[str]], dict[str, bytes]], breach: Breach | None = None,
                    level: int | None = None) -> OutgoingMail:
        """An escalation (with `breach` and `level`: the thread attached), a warning to the team or an
        acknowledgement to the customer. `fetch` reads messages from the mailbox by key; when it fails the
        mail still goes, saying what it lacks."""
        messages = [m for m in thread.sorted_messages() if m.kind is not Kind.OWN]
        first = thread.first_customer_message()
        omitted: list[str] = []
        chosen = _within_budget(messages, omitted) if breach else {}  # only escalations attach the thread
        opener = clock_opener(thread, breach)  # the customer message whose clock ran out
        answers = team_answers(thread, opener)
        answer = answers[-1] if answers else None  # what the team said last before it
        quote = opener if opener and opener.size <= QUOTE_LIMIT else None
        if opener and not quote:
            omitted.append(f"the {'first' if opener is first else 'new'} message ({opener.size} bytes) "
                           f"is too large to quote")
        wanted = {m.key for m in chosen.values()} | {m.key for m in (quote, answer) if m and m.size <= QUOTE_LIMIT}
        try:
            raws = fetch(wanted)
        except SourceError as error:
            raws = None
            omitted.append(f"the thread's messages could not be fetched from the mailbox ({error})")
        attachments = _attachments(chosen, raws, omitted) if raws is not None else []
        context = thread_context(thread, now, raws.get(quote.key) if raws and quote else None, omitted,
                                 breach=breach, zone=self.zone_of(thread),
                                 answer_raw=raws.get(answer.key) if raws and answer else None)
        context["recipients"] = list(to)
        references = [thread.id] + [m.message_id for m in messages[-20:] if m.message_id != thread.id]
        marker = kind if not breach else f"escalation; level={level}; breach={breach.id}"
        envelope_sender = None
        if breach:
            context.update(level=level, breach_id=breach.id)
            headers = auto_headers(marker, secret=self.secret, message_id=message_id, reply_to=self.reply_to)
        elif kind == "ack":  # to the customer
            references = list(dict.fromkeys([thread.id, *([first.message_id] if first else [])]))
            headers, envelope_sender = ack_headers(marker, self.reply_to), ACK_SENDER
        else:
            context.update(time_left=format_span(max((thread.due_at or now) - now, timedelta(0))))  # a warning: clocked
            headers = auto_headers(marker, secret=self.secret, message_id=message_id, reply_to=self.reply_to)
        subject, text, html = self.templates.render(template, context)
        return build_mail(sender=self.sender, to=to, subject=subject, text=text, html=html,
                          message_id=message_id, references=references, date=now, attachments=attachments,
                          headers=headers, envelope_sender=envelope_sender)

    def storm_digest(self, message_id: str, to: list[str], members: list[tuple[Thread, Breach, int, str]],
                     now: datetime) -> OutgoingMail:
        """One mail listing many escalations (each (thread, breach, level, its own Message-ID)): by policy
        priority (rule order), then the most overdue first."""
        escalations = []
        for thread, breach, level, _ in sorted(members, key=lambda m: (self.priority(m[0].policy), m[1].due_at,
                                                                       m[1].id)):
            context = thread_context(thread, now, None, [], breach=breach, zone=self.zone_of(thread))
            context.update(level=level, breach_id=breach.id)
            escalations.append(context)
        recipients = list(to)
        zones = {self.zone_of(thread) for thread, *_ in members}
        zone = self.zone or (self.zone_of(members[0][0]) if len(zones) == 1 else timezone.utc)
        subject, text, html = self.templates.render("digest", {"escalations": escalations, "count": len(members),
                                                              "recipients": recipients,
                                                              "now": human_time(now, zone, now),
                                                              "now_iso": isoformat(now)})
        headers = auto_headers(f"digest; escalations={len(members)}", secret=self.secret, message_id=message_id,
                               reply_to=self.reply_to)
        return build_mail(sender=self.sender, to=recipients, subject=subject, text=text, html=html,
                          message_id=message_id, references=[m[3] for m in members][:DIGEST_REFERENCES], date=now,
                          headers=headers, attachments=[])


# -- chat posts -----------------------------------------------------------------------------------------------------

WEBHOOK_SUBJECT_CHARS = 80


def webhook_post(record: QueuedMail, breach: Breach, now: datetime, zone: tzinfo) -> WebhookPost:
    """A level's post (its record is kind 'webhook', to ["webhook:NAME"]): what chat gets to read."""
    return WebhookPost(record_id=record.message_id, name=record.to[0].partition(":")[2],
                       text=webhook_text(breach, record.level or 0, now, zone), breach=breach.id,
                       level=record.level or 0)


def webhook_text(breach: Breach, level: int, now: datetime, zone: tzinfo) -> str:
    """One paragraph for a channel: the breach, its policy, how late, the subject (as the escalation mail shows
    it) and how to see the rest. Never the customer's address: a channel is a wider audience than a manager's
    inbox, and the mail (and `breaches show`) has it for whoever needs it."""
    clock = "first" if breach.clock == 0 else "next"
    subject = " ".join(breach.subject.split()) or "(no subject)"
    if len(subject) > WEBHOOK_SUBJECT_CHARS:
        subject = subject[:WEBHOOK_SUBJECT_CHARS - 1] + "…"
    late = format_span(max(now - breach.due_at, timedelta(0)))
    return (f"mailesc: breach {breach.id} reached escalation level {level} (policy {breach.policy}): "
            f"no {clock} response to \"{subject}\" {late} after its deadline "
            f"({human_time(breach.due_at, zone, now)}). Details: mailesc breaches show {breach.id}")


def webhook_payload(text: str, format: str = "slack") -> dict:
    """The JSON body for a webhook. "slack": {"text": ...}, which Slack, Mattermost and Teams' old incoming
    webhook connectors take (&, < and > escaped as Slack asks, so a subject cannot mention @channel or make a
    link). "teams": the Adaptive Card envelope that Teams Workflows ("post to a channel when a webhook request
    is received") need: they take no plain `text`."""
    if format == "teams":
        card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
                "version": "1.2", "body": [{"type": "TextBlock", "text": text, "wrap": True}]}
        return {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                                                    "contentUrl": None, "content": card}]}
    return {"text": text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")}


def daily_digest_mail(templates: Templates, template: str, context: dict, *, sender: str, to: list[str],
                      message_id: str, now: datetime) -> OutgoingMail:
    """The daily digest to the managers: its marker is not signed and it has no Reply-To (as it always had)."""
    subject, text, html = templates.render(template, context)
    return build_mail(sender=sender, to=list(to), subject=subject, text=text, html=html, message_id=message_id,
                      references=[], date=now, attachments=[], headers=auto_headers("daily-digest"))


# -- what a mail says about its thread ---------------------------------------------------------------------------

def _within_budget(messages: list[ThreadMessage], omitted: list[str]) -> dict[int, ThreadMessage]:
    """Number -> message to attach, oldest first, within the attachment budget by their known sizes (so a
    huge message is never fetched just to be left out); what is left out is said."""
    chosen, size = {}, 0
    for number, message in enumerate(messages, start=1):
        if size + message.size > ATTACHMENT_BUDGET:
            omitted.append(f"message {number} ({message.message_id}, {message.size} bytes) is too large to attach")
        else:
            size += message.size
            chosen[number] = message
    return chosen


def _attachments(chosen: dict[int, ThreadMessage], raws: dict[str, bytes], omitted: list[str]) -> list[Attachment]:
    attachments = []
    for number, message in chosen.items():
        if message.key in raws:
            attachments.append(Attachment(f"{number:02d}-{message.kind}.eml", raws[message.key]))
        else:
            omitted.append(f"message {number} ({message.message_id}) is no longer in the mailbox")
    return attachments
def clock_opener(thread: Thread, breach: Breach | None) -> ThreadMessage | None:
    """The customer message that started the clock a mail is about: the first one, or for a next-response
    breach the customer's new message after the team's answer."""
    first = thread.first_customer_message()
    if breach is None or not breach.clock:
        return first
    return next((m for m in thread.sorted_messages() if m.kind is Kind.CUSTOMER and m.arrived == breach.received_at),
                first)


def team_answers(thread: Thread, before: ThreadMessage | None) -> list[ThreadMessage]:
    """The team's answers to the customer before `before` arrived, oldest first."""
    return [m for m in thread.sorted_messages() if m.kind is Kind.TEAM and before and m.arrived < before.arrived]


def thread_context(thread: Thread, now: datetime, first_raw: bytes | None, omitted: list[str], *,
                   breach: Breach | None = None, zone: tzinfo | None = None, answer_raw: bytes | None = None) -> dict:
    """What every template may use. Times are in a human form in `zone` (`Mon 21 Dec 11:00 CET`), with an
    ISO 8601 twin (`received_iso`, ...) for whoever needs one; durations are `2h 05m`. For an escalation,
    `received` and `due` are those of the clock that broke (`clock`: first_response or next_response), and
    `answers` are what the team already wrote before the customer's message that started it."""
    zone = zone or timezone.utc
    first = thread.first_customer_message()
    opener = clock_opener(thread, breach)
    due = breach.due_at if breach else thread.due_at
    answers = team_answers(thread, opener)
    excerpt, defects = body_excerpt(first_raw)
    answer_excerpt = body_excerpt(answer_raw)[0] if answers else None

    def when(moment: datetime | None) -> str | None:
        return human_time(moment, zone, now)

    return {
        "customer": first.sender if first else "",
        "customer_name": first.name if first else "",
        "subject": first.subject if first else thread.subject,
        "policy": thread.policy,
        "clock": "next_response" if breach and breach.clock else "first_response",
        "received": when(opener.arrived) if opener else None,
        "received_iso": isoformat(opener.arrived) if opener else None,
        "first_received": when(first.arrived) if first else None,
        "due": when(due),
        "due_iso": isoformat(due),
        "overdue_by": format_span(now - due) if breach and due else None,
        "waiting_for": format_span(now - opener.arrived) if opener else None,
        "excerpt": excerpt,
        "defects": defects,
        "answers": [{"from": m.sender, "name": m.name, "arrived": when(m.arrived), "subject": m.subject}
                    for m in answers],
        "last_answer_excerpt": answer_excerpt,
        "thread": thread.id,
        "messages": [{"from": m.sender, "subject": m.subject, "arrived": when(m.arrived),
                      "arrived_iso": isoformat(m.arrived), "kind": str(m.kind)}
                     for m in thread.sorted_messages() if m.kind is not Kind.OWN],
        "omitted": omitted,
        "now": when(now),
        "now_iso": isoformat(now),
        "timezone": (human_time(now, zone) or "").rsplit(" ", 1)[-1],
    }


def body_excerpt(raw: bytes | None) -> tuple[str, list[str]]:
    """A short plain-text excerpt of a message body, paragraphs kept (one empty line between them, quoted
    lines left out), and the MIME defects mail-parser found in it.

    Kept per message (by a digest of its bytes, EXCERPTS_KEPT of them at most): every escalation level,
    warning and digest of a thread quotes the same opener, and mail-parser's parse of it was a fifth of a
    replay. The excerpt is a pure function of the bytes, so a kept one is the one a new parse would give."""
    if raw is None:
        return "(the message body is not available)", []
    key = hashlib.blake2b(raw, digest_size=16).digest()
    kept = _EXCERPTS.get(key)
    if kept is None:
        kept = _parse_excerpt(raw)
        if len(_EXCERPTS) >= EXCERPTS_KEPT:
            del _EXCERPTS[next(iter(_EXCERPTS))]  # the oldest: openers of threads long escalated
        _EXCERPTS[key] = kept
    excerpt, defects = kept
    return excerpt, list(defects)  # a list of its own: a template must not change the kept one


EXCERPTS_KEPT = 512  # excerpts (each at most EXCERPT_CHARS and a few defect names) kept by body_excerpt
_EXCERPTS: dict[bytes, tuple[str, tuple[str, ...]]] = {}


def _parse_excerpt(raw: bytes) -> tuple[str, tuple[str, ...]]:
    import mailparser  # loads slowly: only when an escalation quotes a message

    try:
        parsed = mailparser.parse_from_bytes(raw)
        text = "\n".join(parsed.text_plain) or _strip_tags("\n".join(parsed.text_html))
        defects = tuple(sorted(parsed.defects_categories))
    except Exception as error:  # mail-parser raises many kinds on broken MIME; the escalation must still go out
        return f"(the message body could not be decoded: {type(error).__name__})", ()
    paragraphs, lines = [], []
    for line in text.splitlines():
        if line.lstrip().startswith(">"):
            continue
        if line.strip():
            lines.append(clean(line))
        elif lines:
            paragraphs.append("\n".join(lines))
            lines = []
    if lines:
        paragraphs.append("\n".join(lines))
    excerpt = "\n\n".join(paragraphs)
    return (excerpt[:EXCERPT_CHARS].rstrip() + " ...") if len(excerpt) > EXCERPT_CHARS else excerpt, defects


def _strip_tags(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", re.sub(r"(?is)<(script|style).*?</\1>", " ", html))
