#!/usr/bin/env python3
"""Generate ``examples/support-inbox.mbox``: four weeks of a realistic support mailbox.

The mailbox belongs to the support team of *Tessera*, a SaaS company whose mail
domain is ``example.test``.  Customers write to ``support@example.test``; agents
answer from their own address (Cc the shared mailbox) or from the shared mailbox
itself.  Inbox and Sent folder are merged into one mbox in arrival order, and the
mbox ``From_`` line of every message carries its arrival time in UTC.

Besides ordinary customer threads the file contains everything an escalation
tool has to cope with: chasers ("any update?"), back-and-forth conversations,
internal forwards to the manager, out-of-office replies in several dialects,
delivery status notifications, a newsletter, monitoring alerts, a VIP customer,
replies threaded only by ``References`` or only by subject, one message without
a Message-ID, encoded-word subjects and display names, and Date headers in many
time zones.

Run ``python3 examples/generate_inbox.py``.  Stdlib only, no network, no clock:
the output is byte-identical on every run (fixed seed, explicit MIME boundaries)
for a given Python minor version.  The script re-reads the mbox to verify it and
writes a summary to stdout and to ``examples/README.md``.
"""

from __future__ import annotations

import base64
import email
import email.policy
import html
import mailbox
import random
import re
import struct
import sys
import textwrap
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime, timedelta, timezone
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

# --------------------------------------------------------------------------
# Output and scenario constants
# --------------------------------------------------------------------------

SEED = 20261001
HERE = Path(__file__).resolve().parent
MBOX_PATH = HERE / "support-inbox.mbox"
README_PATH = HERE / "README.md"

POLICY = email.policy.default.clone(linesep="\n")

# First and last possible arrival.  07:00 UTC is midnight in the westernmost
# customer zone (-0700); the snapshot is taken on Wed 28 Oct, 18:00 team time.
WINDOW_START = datetime(2026, 10, 1, 7, 0, tzinfo=timezone.utc)
WINDOW_END = datetime(2026, 10, 28, 17, 0, tzinfo=timezone.utc)

# Team working hours (team local time, Mon-Fri) and the deadlines reported.
WORKDAY_START_HOUR = 9
WORKDAY_END_HOUR = 18
ON_TIME = timedelta(hours=4)
VIP_DEADLINE = timedelta(hours=1)

# Regular (non-VIP) thread mix; the VIP threads are scripted in VIP_SCENARIOS.
PROMPT_THREADS = 80          # opened in working hours, answered within ~4h
SLOW_THREADS = 35            # answered 5+ h later (evenings, weekends, backlog)
SLOW_REPLY_HOURS = (5, 22)   # target delay; pushed to the next working hour if outside
NEVER_THREADS = 20           # never answered before the snapshot
CONVERSATION_SHARE = 0.30    # answered threads that continue after the reply
THANKS_ONLY_SHARE = 0.35     # ... whose last customer message needs no answer
CHASER_SHARE = {"slow": 0.35, "never": 0.60}   # "any update?" before the (missing) reply
FORGOT_ATTACHMENT_SHARE = 0.3  # attachment arrives in a second message minutes later
SECOND_CHASER_SHARE = 0.25   # never-answered threads with a second chaser
SHARED_MAILBOX_SHARE = 0.35  # replies sent from support@ rather than an agent
HTML_SHARE_GMAIL = 0.60      # gmail-style clients; Outlook always sends HTML

# Special cases (each a handful of regular threads).
REFERENCES_ONLY_REPLIES = 6       # first reply has References but no In-Reply-To
SUBJECT_ONLY_TEAM_REPLIES = 3     # first reply has neither ("RE: ...")
SUBJECT_ONLY_CUSTOMER_REPLIES = 2  # customer answer has neither ("AW: ...")
INTERNAL_FORWARDS = 5             # agent -> manager "Fwd:", plus two VIP ones
CC_THREADS = 4                    # customer Cc's a colleague (plus the bounce one)
OUT_OF_OFFICE = {               # style: number of auto-replies
    "rfc3834": 3,               # Auto-Submitted: auto-replied
    "exchange": 3,              # X-Auto-Response-Suppress + Return-Path <> + "Automatic reply:"
    "x-autoreply": 1,           # nothing but X-Autoreply: yes
}
NEWSLETTER_DAYS = (6, 13, 20, 27)   # Tuesdays

# --------------------------------------------------------------------------
# Time zones (fixed offsets with the real 2026 DST switches inside the window)
# --------------------------------------------------------------------------

EU_DST_END = datetime(2026, 10, 25, 1, 0, tzinfo=timezone.utc)

ZONES = {  # zone: (offset before EU_DST_END, offset after)
    "EU": (timedelta(hours=2), timedelta(hours=1)),    # Berlin, Paris, Stockholm
    "UK": (timedelta(hours=1), timedelta(hours=0)),    # London, Lisbon
    "US_E": (timedelta(hours=-4), timedelta(hours=-4)),  # US DST ends 1 Nov
    "US_P": (timedelta(hours=-7), timedelta(hours=-7)),
    "IN": (timedelta(hours=5, minutes=30),) * 2,
    "VN": (timedelta(hours=7),) * 2,
    "JP": (timedelta(hours=9),) * 2,
}
TEAM_ZONE = "EU"

WEEKDAY_ABBR = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                 "Saturday", "Sunday")
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July",
               "August", "September", "October", "November", "December")


def utc_offset(zone: str, when: datetime) -> timedelta:
    before, after = ZONES[zone]
    return before if when < EU_DST_END else after


def in_zone(when: datetime, zone: str) -> datetime:
    return when.astimezone(timezone(utc_offset(zone, when)))


def team_time(when: datetime) -> datetime:
    return in_zone(when, TEAM_ZONE)


def from_zone_local(naive: datetime, zone: str) -> datetime:
    """UTC instant of a naive wall-clock time in ``zone``."""
    for offset in ZONES[zone]:
        candidate = (naive - offset).replace(tzinfo=timezone.utc)
        if utc_offset(zone, candidate) == offset:
            return candidate
    raise ValueError(f"{naive} does not exist in {zone}")


def from_team_local(naive: datetime) -> datetime:
    return from_zone_local(naive, TEAM_ZONE)


def is_working_time(when: datetime) -> bool:
    local = team_time(when)
    return local.weekday() < 5 and WORKDAY_START_HOUR <= local.hour < WORKDAY_END_HOUR


def next_working_time(when: datetime) -> datetime:
    """``when`` itself during working hours, else the start of the next working day."""
    if is_working_time(when):
        return when
    local = team_time(when)
    day = local.date()
    if local.weekday() >= 5 or local.hour >= WORKDAY_END_HOUR:
        day += timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return from_team_local(datetime.combine(day, dtime(WORKDAY_START_HOUR)))


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def human_date(when: datetime) -> str:
    """'Thu, 1 Oct 2026 at 09:12' (locale independent)."""
    return (f"{WEEKDAY_ABBR[when.weekday()]}, {when.day} {MONTH_NAMES[when.month - 1][:3]} "
            f"{when.year} at {when:%H:%M}")


def outlook_date(when: datetime) -> str:
    """'Thursday, October 1, 2026 9:12 AM'."""
    hour12 = when.hour % 12 or 12
    return (f"{WEEKDAY_NAMES[when.weekday()]}, {MONTH_NAMES[when.month - 1]} {when.day}, "
            f"{when.year} {hour12}:{when.minute:02d} {'AM' if when.hour < 12 else 'PM'}")


# --------------------------------------------------------------------------
# People
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Person:
    name: str
    addr: str
    zone: str = TEAM_ZONE
    client: str = "thunderbird"   # thunderbird | apple | gmail | outlook | roundcube | machine
    lang: str = "en"
    greet_as: str | None = None   # name others greet them with, default: first name
    signs_as: str | None = None   # name they sign short notes with, default: first name

    @property
    def domain(self) -> str:
        return self.addr.rpartition("@")[2]

    @property
    def first(self) -> str:
        if self.greet_as is not None:
            return self.greet_as
        return self.name.split()[0] if self.name else ""

    @property
    def signature(self) -> str:
        if self.signs_as is not None:
            return self.signs_as
        return self.name.split()[0] if self.name else self.addr.partition("@")[0]

    @property
    def address(self) -> Address:
        return Address(self.name, addr_spec=self.addr)

    def __str__(self) -> str:
        return f"{self.name} <{self.addr}>" if self.name else self.addr


SUPPORT = Person("Tessera Support", "support@example.test", client="roundcube")
ALICE = Person("Alice Novak", "alice@example.test", client="thunderbird")
BOB = Person("Bob Okafor", "bob@example.test", client="thunderbird")
CHEN = Person("Chen Wei", "chen@example.test", client="apple")
DANA = Person("Dana Kowalski", "dana@example.test", client="outlook")
AGENTS = (ALICE, BOB, CHEN, DANA)
AGENT_WEIGHTS = (3, 3, 2, 2)
TEAM = (SUPPORT,) + AGENTS
MANAGER = Person("Maria Santos", "manager@example.test", client="outlook")
DIRECTOR = Person("David Lindgren", "director@example.test", client="outlook")

COMPANIES = {  # domain: (company name, sending host, IP)
    "acme.example": ("Acme Corporation", "mail.acme.example", "198.51.100.23"),
    "globex.example": ("Globex Ltd", "mail.globex.example", "198.51.100.41"),
    "initech.example": ("Initech GmbH", "mx-out.initech.example", "198.51.100.57"),
    "umbrella.example": ("Umbrella Health", "smtp.umbrella.example", "198.51.100.88"),
    "hooli.example": ("Hooli Inc.", "mail.hooli.example", "198.51.100.102"),
    "vandelay.example": ("Vandelay Industries", "mail.vandelay.example", "198.51.100.130"),
    "bigcorp.example": ("BigCorp plc", "mail-eu.bigcorp.example", "198.51.100.201"),
    "mail.example": (None, "mail-out3.mail.example", "203.0.113.25"),
    "monitoring.example": (None, "alerts.monitoring.example", "203.0.113.40"),
    "news.saasweekly.example": (None, "mta12.news.saasweekly.example", "203.0.113.77"),
}


def person(name, addr, zone, client, lang="en", weight=3, greet_as=None, signs_as=None):
    return Person(name, addr, zone, client, lang, greet_as, signs_as), weight


CUSTOMERS_WEIGHTED = (
    person("Laura Chen", "laura.chen@acme.example", "US_E", "apple", weight=5),
    person("Marcus Reed", "marcus.reed@acme.example", "US_E", "thunderbird"),
    person("Priya Natarajan", "priya.natarajan@acme.example", "IN", "thunderbird"),
    person("Dennis O'Brien", "dennis.obrien@acme.example", "US_E", "apple", weight=2),
    person("Oliver Hughes", "oliver.hughes@globex.example", "UK", "outlook", weight=5),
    person("Sophie Turner-Blake", "s.turner-blake@globex.example", "UK", "outlook"),
    person("Ravi Kapoor", "ravi.kapoor@globex.example", "IN", "outlook", weight=2),
    person("Jürgen Müller", "j.mueller@initech.example", "EU", "outlook", "de", weight=5),
    person("Katrin Schäfer", "k.schaefer@initech.example", "EU", "outlook", "de", weight=4),
    person("Stefan Wolf", "s.wolf@initech.example", "EU", "outlook", "de"),
    person("Ayşe Yılmaz", "a.yilmaz@initech.example", "EU", "outlook"),
    person("Emily Zhang", "emily.zhang@umbrella.example", "US_P", "gmail", weight=4),
    person("Carlos Mendoza", "cmendoza@umbrella.example", "US_P", "gmail"),
    person("José Álvarez", "jose.alvarez@umbrella.example", "US_P", "gmail", weight=2),
    person("Hannah Park", "hannah.park@umbrella.example", "US_P", "gmail"),
    person("Nina Patel", "nina@hooli.example", "US_P", "apple", weight=4),
    person("Ethan Brooks", "ethan.brooks@hooli.example", "US_P", "apple"),
    person("Zoë Ångström", "zoe.angstrom@hooli.example", "EU", "apple"),
    person("Rebecca Liu", "rebecca.liu@vandelay.example", "US_E", "thunderbird"),
    person("Tomás Ferreira", "tomas.ferreira@vandelay.example", "UK", "thunderbird"),
    person("Kate Morrison", "kate.morrison87@mail.example", "UK", "gmail"),
    person("Søren Nielsen", "soren.nielsen@mail.example", "EU", "gmail", weight=2),
    person("François Lefèvre", "f.lefevre@mail.example", "EU", "gmail", "fr"),
    person("Łukasz Wiśniewski", "lukasz.w@mail.example", "EU", "gmail", weight=2),
    person("山田 太郎", "taro.yamada@mail.example", "JP", "gmail", "ja", weight=2,
           greet_as="Yamada-san", signs_as="山田"),
    person("Nguyễn Thị Lan", "lan.nguyen@mail.example", "VN", "gmail", weight=2,
           greet_as="Lan", signs_as="Lan"),
    person("Aarav Sharma", "aarav.sharma@mail.example", "IN", "gmail", weight=2),
    person("Chloé Dubois", "chloe.dubois@mail.example", "EU", "gmail", "fr", weight=2),
    person("", "mike_t@mail.example", "US_E", "gmail", weight=2),
)
CUSTOMERS = tuple(p for p, _ in CUSTOMERS_WEIGHTED)
CUSTOMER_WEIGHTS = tuple(w for _, w in CUSTOMERS_WEIGHTED)

HARRIET = Person("Harriet Vance", "harriet.vance@bigcorp.example", "UK", "outlook")
RAJESH = Person("Rajesh Iyer", "rajesh.iyer@bigcorp.example", "IN", "outlook")
TOM = Person("Tom Becker", "tom.becker@bigcorp.example", "US_P", "outlook")
INGRID = Person("Ingrid Halvorsen", "ingrid.halvorsen@bigcorp.example", "EU", "outlook")

# Cc'd colleague with a typo: the team's reply-all to it bounces (5.1.1).
TYPO_COLLEAGUE = Person("Marcus Reed", "marcus.reeed@acme.example", "US_E")

MONITORING = Person("Tessera Monitoring", "noreply@monitoring.example", client="machine")
NEWSLETTER = Person("SaaS Ops Weekly", "newsletter@news.saasweekly.example", client="machine")
MAILER_DAEMON = Person("Mail Delivery System", "MAILER-DAEMON@mx.example.test",
                       client="machine")


def company_of(p: Person) -> str | None:
    return COMPANIES[p.domain][0] if p.domain in COMPANIES else None


def colleagues_of(p: Person) -> list[Person]:
    if company_of(p) is None:
        return []
    return [c for c in CUSTOMERS if c.domain == p.domain and c != p]


# --------------------------------------------------------------------------
# Texts
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One kind of customer request: subject, first message and the team's answer."""
    topic: str
    subject: str
    opening: str
    answer: str
    attachment: str | None = None   # png | tasks.csv | users.csv | report.csv
    lang: str = "en"
    companies_only: bool = False    # not asked by individuals at mail.example


CASES = (
    # -- logging in ---------------------------------------------------------
    Case("login", "Cannot log in after password reset ({ws})",
         "I reset my password and now I can't log in anymore. The login page just says "
         "\"Invalid email or password\", although I pasted the new password straight from my "
         "password manager.\n\nWorkspace: {ws}\nBrowser: {browser}\n\n"
         "Could you please have a look? Screenshot attached.",
         "I've checked your account in {ws}: the reset went through, but the account was "
         "locked after several failed attempts. I have unlocked it, so you should be able to "
         "log in again.\n\nIf it still fails, please tell me the exact time of the attempt "
         "and I'll check the logs.", "png"),
    Case("login", "Login redirects back to the sign-in page in {browser}",
         "Since {since} I get sent back to the login page right after entering my password. "
         "I cleared cookies and tried a private window, same result.\n"
         "From what I can tell it only affects my account; my colleagues can log in fine.",
         "This was caused by a stale session cookie from our old login domain. Please clear "
         "the cookies for app.example.test and try again. We have deployed a fix as well, so "
         "it should not come back."),
    Case("login", "2FA code rejected every time since {since}",
         "Our authenticator app codes are rejected on every attempt. The phone clock is set "
         "automatically, so it shouldn't be time drift. I can't get into {ws} at all now.",
         "I've reset the two-factor enrolment for your user. At your next login you'll be "
         "asked to scan a new QR code; after that the codes will be accepted again."),
    Case("login", "Locked out of account {user}",
         "I mistyped my password a few times and now {user} is locked. How long until I can "
         "try again? I need to get into {ws} for a client meeting.",
         "I've unlocked the account, you can log in right away. Without intervention the "
         "lock is lifted automatically after 30 minutes."),
    Case("login", "Problème de connexion après la mise à jour",
         "depuis la dernière mise à jour je ne peux plus me connecter : la page de connexion "
         "se recharge sans message d'erreur. J'ai déjà vidé le cache du navigateur.",
         "Sorry for answering in English. The update changed our login domain and your "
         "browser still had an old session cookie. Please delete the cookies for "
         "app.example.test; after that the login works again.", lang="fr"),
    Case("login", "ログインできません（パスワード再設定後）",
         "パスワードを再設定した後、ログインできなくなりました。\n"
         "(Sorry for writing in Japanese - I cannot log in after resetting my password.)",
         "No problem at all. Your account was locked after several attempts with the old "
         "password; I have unlocked it and you can log in with the new password now.",
         lang="ja"),
    # -- single sign-on -----------------------------------------------------
    Case("sso", "SAML SSO failing for {n} users in {ws}",
         "Since {since} {n} of our users get an error when signing in through SSO. The IdP "
         "side looks fine and the other users are not affected.\n\nError shown: \"SAML "
         "response could not be validated\".\n\nCan you see anything in your logs?",
         "The affected users were still mapped to the old IdP entity ID. I've updated the "
         "mapping for {ws}; could you ask one of them to try again?", companies_only=True),
    Case("sso", "Azure AD SSO certificate rotation for {ws}",
         "Our IdP certificate expires at the end of the month. What's the recommended way "
         "to rotate it in Tessera without locking everybody out of {ws}?",
         "You can upload the new certificate under Settings > Security > SSO before the old "
         "one expires; both are accepted in parallel until you remove the old one. Our help "
         "article \"Rotating SAML certificates\" has screenshots of each step.",
         companies_only=True),
    Case("sso", "Okta SSO: \"Assertion expired\" error in {ws}",
         "Since {since} some users get \"Assertion expired\" when they log in through Okta. "
         "Our servers are NTP-synced, so I don't think it's our clock.",
         "You were right, it wasn't your clock: one of our SSO hosts had drifted by a few "
         "minutes after a hardware replacement. It has been resynchronised.", companies_only=True),
    # -- invoices and payments ----------------------------------------------
    Case("invoice", "Question about invoice {inv}",
         "We received invoice {inv} over {amount} EUR, but our contract says we should be "
         "billed annually, not monthly. Could you check and send a corrected invoice?",
         "Thanks for spotting this. You're right, the workspace was switched to monthly "
         "billing by mistake. I've corrected the plan and voided {inv}; the annual invoice "
         "will follow in a separate email."),
    Case("invoice", "Invoice {inv} shows the wrong VAT ID",
         "Our accounting department noticed that invoice {inv} lists an old VAT ID. Please "
         "reissue it with the current one, otherwise we cannot pay it.",
         "I have reissued the invoice with the updated VAT ID; you'll find it under "
         "Settings > Billing > Invoices. The old one has been voided."),
    Case("invoice", "Duplicate charge on card ending {card}",
         "Our card ending in {card} was charged twice ({amount} EUR each) this month. "
         "Please refund the duplicate.",
         "I can confirm the duplicate charge. The refund has been issued today and should "
         "appear on your statement within 5-10 business days."),
    Case("invoice", "Please resend invoice {inv} as PDF",
         "I need a copy of invoice {inv} for our auditors; the link in the original email "
         "has expired.",
         "I've sent the invoice again. You can also download every invoice as PDF at any "
         "time under Settings > Billing > Invoices."),
    Case("invoice", "URGENT: payment failed, is {ws} going to be suspended?",
         "We got an email saying our payment failed and that {ws} will be suspended. Our "
         "company card was replaced last month. Please don't suspend us - how do we update "
         "the card?",
         "Nothing will be suspended: there is a 14-day grace period. You can add the new "
         "card under Settings > Billing > Payment method and the open invoice will be "
         "retried automatically."),
    Case("invoice", "Frage zur Rechnung {inv} – Überweisung noch nicht verbucht",
         "wir haben die Rechnung {inv} über {amount} EUR bereits letzte Woche überwiesen, im "
         "Kundenportal wird sie aber weiterhin als offen angezeigt. Können Sie das bitte "
         "prüfen?",
         "Sorry for answering in English. Your transfer for {inv} arrived, but without the "
         "invoice number in the reference, so it couldn't be matched automatically. I've "
         "marked the invoice as paid.", lang="de"),
    Case("invoice", "Question sur la facture {inv} (TVA intracommunautaire)",
         "la facture {inv} ne mentionne pas notre numéro de TVA intracommunautaire. "
         "Pourriez-vous nous envoyer une facture rectifiée ?",
         "Sorry for answering in English. I've added your VAT number to the account and "
         "reissued {inv}; the corrected invoice is available under Settings > Billing.",
         lang="fr"),
    # -- plans and seats ------------------------------------------------------
    Case("plan", "Upgrade from Team to Business plan ({seats} seats)",
         "We'd like to move {ws} from the Team plan to Business with {seats} seats. Can we do "
         "that mid-term, and how would the price difference be calculated?",
         "Yes, you can upgrade at any time under Settings > Billing. The difference is "
         "prorated to the day, so you only pay for the remaining part of the term."),
    Case("plan", "Cancel subscription for {ws} at end of term",
         "Please cancel our subscription at the end of the current term. We are "
         "consolidating tools and won't renew. Please confirm we won't be charged again.",
         "Done: the subscription ends with the current term and you will not be charged "
         "again. Your data stays available for export for 30 days after that."),
    Case("plan", "Adding {n} seats mid-cycle - how is it billed?",
         "We're onboarding a new department and need {n} more seats in {ws}. Is that "
         "prorated, or do we pay for the full month?",
         "Additional seats are prorated to the day and appear as a separate line on your "
         "next invoice.", companies_only=True),
    Case("plan", "Nonprofit discount for {company}?",
         "We're a registered nonprofit. Do you offer a discount for nonprofits? We would "
         "need about {seats} seats.",
         "Yes, we offer 50% off the Team and Business plans for registered nonprofits. If "
         "you reply with a proof of your status, I'll apply the discount to {ws}."),
    # -- API ----------------------------------------------------------------
    Case("api", "API returns {code} on POST {endpoint}",
         "Since {since} our integration gets HTTP {code} from POST {endpoint}. Nothing "
         "changed on our side. Example request id: {req}.\n\n"
         "From our logs the payload looks valid, and the same call works in the sandbox.",
         "Thanks for the request id, that made it easy to find. The {code}s came from a "
         "validation bug in the last deployment when the payload contains an empty "
         "\"labels\" array. A fix is live since this morning; please retry."),
    Case("api", "429 Too Many Requests on {endpoint} since {since}",
         "We keep hitting 429 on {endpoint} although we send fewer than 5 requests per "
         "second. Has the rate limit changed? Request id {req}.",
         "The limit itself hasn't changed, but requests from your token were counted twice "
         "because of a proxy misconfiguration on our side. That's fixed now."),
    Case("api", "Webhook deliveries failing with 401 ({ws})",
         "Since {since} our endpoint rejects Tessera webhooks with 401 because the "
         "signature doesn't match. We did not rotate the secret.",
         "An admin in {ws} rotated the webhook signing secret recently (you'll see it in the "
         "audit log). Please copy the new secret from Settings > Webhooks into your "
         "endpoint's configuration."),
    Case("api", "Pagination cursor returns duplicate items on {endpoint}",
         "When paging through {endpoint} with the cursor, some items show up on two pages "
         "and others are missing. Is that expected if items are updated while we page?",
         "Yes, cursors are not stable when items change during paging. Please sort by "
         "\"created_at\" for exports; we've added a note to the API docs as well."),
    Case("api", "API token stopped working (request id {req})",
         "Our API token suddenly returns 401 Unauthorized. Request id {req}. As far as we "
         "know nobody revoked it.",
         "Tokens created before our 1 October security update had to be reissued; the "
         "admins of {ws} were notified by email. Please create a new token under "
         "Settings > API."),
    # -- features -------------------------------------------------------------
    Case("feature", "Does Tessera support {feature}?",
         "Quick question before we roll Tessera out to more teams: is {feature} supported? "
         "We couldn't find it in the docs.",
         "Not yet, but it's on our roadmap for the first quarter. I've added your vote and "
         "will let you know when it's available in beta."),
    Case("feature", "Feature request: {feature}",
         "It would help us a lot if Tessera had {feature}. Is there any chance this will "
         "be added? Happy to give feedback on a beta.",
         "Thanks for the suggestion - I've passed it to our product team together with your "
         "use case and added {ws} to the list of beta testers."),
    Case("feature", "Is {feature} available on the Business plan?",
         "We're on the Team plan. Would upgrading to Business give us {feature}?",
         "Yes, it's included in the Business plan; you'll find it under Settings > Workspace "
         "after upgrading."),
    # -- imports --------------------------------------------------------------
    Case("import", "CSV import fails at row {row}",
         "Our CSV import stops at row {row} with \"Unexpected value in column due_date\". "
         "I've attached the first lines of the file. The dates look fine to me.",
         "The import expects dates as YYYY-MM-DD, but some rows use DD.MM.YYYY. If you "
         "change the column format and import again, it will go through.", "tasks.csv"),
    Case("import", "Import from Trello: attachments missing ({ws})",
         "We imported our Trello boards into {ws} yesterday. Cards and comments came over, "
         "but none of the attachments did.",
         "Attachments are imported in a second pass that can take a few hours for large "
         "boards. The job for {ws} has finished now; could you have another look?"),
    Case("import", "Bulk user import rejects valid email addresses",
         "Our bulk user import rejects addresses with a plus sign, like "
         "first.last+tessera@{domain}. Those are valid addresses. File attached.",
         "You're right, that was a bug in our address validation. It's fixed; please run "
         "the import again.", "users.csv", companies_only=True),
    # -- users ------------------------------------------------------------------
    Case("users", "Transfer workspace ownership in {ws}",
         "Our workspace owner has left the company. How can we transfer ownership of {ws} "
         "to me? I'm already an admin.",
         "I've transferred ownership of {ws} to you. The former owner is now a regular "
         "member; you can remove them under Settings > Members.", companies_only=True),
    Case("users", "Remove former employee from {ws}",
         "Please remove a former employee from {ws}. They left last week and we can't "
         "delete the account ourselves because they own several projects.",
         "Done. The projects were reassigned to you and the account has been deactivated.",
         companies_only=True),
    Case("users", "Guest users can see private projects in {ws}?",
         "We noticed that a guest user could open a project in {ws} that's marked private. "
         "Is that expected?",
         "Guests only see private projects they've been invited to. In this case the guest "
         "was added to the project by one of your colleagues - you'll find it in the "
         "project's audit log.", companies_only=True),
    Case("users", "Zugang für neue Mitarbeiterin in {ws} einrichten",
         "wir möchten eine neue Kollegin als Administratorin in {ws} hinzufügen. Leider "
         "erscheint beim Einladen die Meldung „Lizenzlimit erreicht“, obwohl noch Plätze "
         "frei sein müssten.",
         "Sorry for answering in English. Two pending invitations were still holding seats. "
         "I've cancelled them, so you can invite your colleague now.", lang="de"),
    # -- integrations -----------------------------------------------------------
    Case("integrations", "{integration} integration stopped posting updates ({ws})",
         "Our {integration} integration stopped posting updates {since}. We didn't change "
         "anything, and reconnecting didn't help.",
         "The {integration} connection token for {ws} had expired. I've triggered a "
         "re-authorisation; an admin will be asked to confirm the connection once."),
    Case("integrations", "{integration} sync creates duplicate tasks in {ws}",
         "Since {since} every task synced from {integration} appears twice in {ws}.",
         "We found the cause: a retry on our side created the duplicates. The fix is "
         "deployed and I've removed the duplicated tasks in {ws}."),
    # -- performance ------------------------------------------------------------
    Case("performance", "Dashboard very slow since {since} ({ws})",
         "Loading the dashboard in {ws} takes 20-30 seconds since {since}. Other pages are "
         "fine. We're in {city}, if that matters.",
         "Thanks for the report. A slow database query affected workspaces with many "
         "archived projects; we've added an index and load times are back to normal."),
    Case("performance", "Search takes {n} seconds to return results ({ws})",
         "Search in {ws} has become really slow - around {n} seconds per query. It used to "
         "be instant.",
         "The search index for {ws} was being rebuilt after a migration. That has finished, "
         "so search should be fast again."),
    # -- privacy and security ---------------------------------------------------
    Case("gdpr", "Data Processing Agreement for {company}",
         "Our legal team needs a signed Data Processing Agreement before we can extend our "
         "use of Tessera. Could you send one?",
         "Our DPA is available at https://example.test/legal/dpa; you can sign it "
         "electronically under Settings > Billing > Legal."),
    Case("gdpr", "GDPR deletion request for {ws}",
         "Under Art. 17 GDPR please delete all personal data of a former employee from "
         "{ws}. Their account has already been deactivated.",
         "The deletion has been completed. You'll receive a confirmation from our privacy "
         "team within the next few days.", companies_only=True),
    Case("gdpr", "Where is our data hosted? ({company})",
         "Could you tell us in which region our data is stored and which subprocessors you "
         "use?",
         "Your workspace is hosted in our EU region (Frankfurt). The list of subprocessors "
         "is published at https://example.test/legal/subprocessors."),
    Case("security", "Security questionnaire for vendor review ({company})",
         "As part of our annual vendor review we need our security questionnaire filled "
         "in. Could you return it by the end of next week?",
         "I've forwarded this to our security team; they usually return questionnaires "
         "within five business days."),
    Case("security", "Request for SOC 2 report ({company})",
         "Could you send us your latest SOC 2 Type II report? We're happy to sign an NDA.",
         "You can request the report through our trust center at https://trust.example.test. "
         "The NDA is a click-through there."),
    # -- notifications and mobile -------------------------------------------------
    Case("notifications", "Not receiving notification emails ({ws})",
         "None of us in {ws} has received notification emails since {since}. Spam folders "
         "are empty as well.",
         "Our mail provider had put your domain on a suppression list after a few bounces. "
         "I've removed it; notifications should arrive again."),
    Case("notifications", "Daily digest arrives twice ({ws})",
         "Since {since} the daily digest for {ws} arrives twice every morning, a few "
         "minutes apart.",
         "That was a scheduling bug that affected a small number of workspaces. It's fixed; "
         "you'll get a single digest from tomorrow on."),
    Case("mobile", "iOS app crashes on launch (v{version})",
         "After updating to version {version} the iOS app crashes right after the splash "
         "screen. Reinstalling didn't help. Screenshot attached.",
         "Thanks for the screenshot. This is a known issue in {version} on devices whose "
         "system language isn't English; the fixed version is in App Store review and should "
         "be out tomorrow.", "png"),
    Case("mobile", "Android app: push notifications delayed (v{version})",
         "Push notifications from the Android app (version {version}) arrive one to three "
         "hours late, sometimes not at all.",
         "This is caused by Android's battery optimisation. Please exclude the Tessera app "
         "under Settings > Battery; we're working on a more robust solution."),
    # -- reports --------------------------------------------------------------------
    Case("reports", "Timezone wrong in exported reports ({ws})",
         "All timestamps in our exported reports are two hours off, although the workspace "
         "timezone is set correctly. Example export attached.",
         "Exports use UTC unless \"Use workspace timezone\" is ticked in the export dialog. "
         "Once you enable it the timestamps will match what you see in the app.",
         "report.csv"),
    Case("reports", "Scheduled report empty since {since} ({ws})",
         "The weekly scheduled report for {ws} has been empty since {since}, although "
         "there's plenty of activity.",
         "The scheduled report was still filtered to a project that has since been archived. "
         "I've updated the filter; the next report will contain data again."),
    Case("reports", "Fehlermeldung beim Export: „Zeitüberschreitung“ ({ws})",
         "seit Montag bricht der Export unserer Berichte mit „Zeitüberschreitung“ ab. "
         "Betroffen sind nur die großen Projekte in {ws}.",
         "Sorry for answering in English. Large exports now run in the background: you'll "
         "get an email with a download link instead of the timeout.", lang="de"),
    # -- account ----------------------------------------------------------------------
    Case("account", "Trial extension request for {ws}",
         "Our trial ends in two days but we haven't finished the evaluation - could you "
         "extend it by two weeks?",
         "I've extended the trial for {ws} by 14 days. Let me know if you have questions "
         "during the evaluation."),
    Case("account", "Change the billing email for {company}",
         "Please change the billing contact for our account to accounts@{domain}.",
         "Done, future invoices will go to accounts@{domain}."),
    Case("account", "Refund for annual plan charged by mistake ({ws})",
         "We were charged {amount} EUR for an annual plan although we meant to stay on "
         "monthly billing. Can you refund it and switch us back?",
         "I've refunded the annual charge and switched {ws} back to monthly billing."),
    Case("account", "Demande de remboursement – abonnement annuel ({ws})",
         "nous avons été débités de {amount} EUR pour un abonnement annuel alors que nous "
         "voulions rester en mensuel. Merci de procéder au remboursement.",
         "Sorry for answering in English. I've refunded the annual charge and switched "
         "{ws} back to monthly billing.", lang="fr"),
)
LOCALIZED_SHARE = 0.6   # customers with a localized case write in their own language

LONG_SUBJECT = ("Scheduled CSV exports for the finance, sales and operations workspaces have "
                "been arriving empty or without the custom fields we configured last quarter "
                "ever since the maintenance window on the weekend")

LONG_SUBJECT_OPENING = ("our scheduled CSV exports stopped working properly after the "
                        "maintenance window. Some files are empty, others are missing all "
                        "custom fields. Can you check?")
LONG_SUBJECT_ANSWER = ("The exports were still using the field mapping from before the "
                       "maintenance. I've re-applied your custom fields and re-run last "
                       "night's exports; they are complete now.")

GREETINGS = {
    "en": ("Hi,", "Hello,", "Hi support team,", "Hello Tessera team,", "Hi there,"),
    "de": ("Hallo zusammen,", "Guten Tag,", "Sehr geehrte Damen und Herren,"),
    "fr": ("Bonjour,", "Bonjour à toute l'équipe,"),
    "ja": ("サポートチーム御中",),
}
SIGNOFFS = {
    "en": ("Thanks", "Best regards", "Cheers", "Kind regards", "Thanks in advance"),
    "de": ("Viele Grüße", "Mit freundlichen Grüßen", "Beste Grüße"),
    "fr": ("Cordialement", "Bien à vous"),
    "ja": ("よろしくお願いします",),
}

CHASERS = (
    "Hi, any update on this?",
    "Hello again, just following up - we're still blocked by this.",
    "Any news? This is starting to affect the whole team.",
    "Sorry to chase, but could someone please get back to me today?",
    "Is anybody looking at this? I haven't heard back yet.",
)
FORGOT_ATTACHMENT = "Sorry, forgot the attachment - here it is."
CUSTOMER_FOLLOW_UPS = (
    "Thanks for the quick reply. That worked for most users, but two people still see the "
    "same problem. Anything else we can try?",
    "Thanks! One more question: does this also apply to our second workspace?",
    "Unfortunately that didn't help. I tried again just now and got the same result.",
    "Great, thanks. Could you also confirm this won't affect our billing?",
    "Thanks. From now on, should we contact you directly or keep writing to this address?",
)
CUSTOMER_THANKS = (
    "That fixed it, thank you!",
    "Perfect, thanks a lot for your help.",
    "All good now. You can close this ticket.",
    "Works again - thanks for sorting this out so quickly.",
)
TEAM_FOLLOW_UPS = (
    "Thanks for checking. I've passed the details to our engineering team and will get back "
    "to you as soon as I hear from them.",
    "Yes, that applies to all workspaces on your account.",
    "I had another look and found a second setting that needed changing. It should work now - "
    "could you confirm?",
    "Confirmed, there is no impact on billing.",
    "Please keep writing to support@example.test, that way the whole team sees your message.",
)
FORWARD_NOTES = (
    "FYI - customer is getting impatient, can we prioritise this with engineering?",
    "This one is about a refund above my approval limit, could you take it?",
    "Could you have a look? I'm not sure how we want to handle this one.",
    "Second time this customer reports this. Do we want to offer a credit?",
)

FEATURES = ("SCIM user provisioning", "Gantt charts", "custom fields on subtasks",
            "a dark mode for the dashboard", "recurring tasks", "time tracking per project",
            "exporting comments to PDF", "an on-premise deployment", "audit log export",
            "two-way Google Calendar sync", "guest access without a licence")
INTEGRATIONS = ("Slack", "Microsoft Teams", "Jira", "Zapier", "Salesforce", "GitHub")
ENDPOINTS = ("/v2/projects", "/v2/tasks", "/v2/webhooks", "/v2/users", "/v2/reports/export",
             "/v2/comments", "/v2/attachments", "/v2/time-entries")
BROWSERS = ("Chrome 129", "Firefox 131", "Safari 18", "Edge 129")
WORKSPACE_SUFFIXES = ("main", "ops", "finance", "marketing", "eng", "hq", "sales", "it",
                      "product", "design")
CITIES = ("Boston", "Bangalore", "Berlin", "London", "San Francisco", "Lisbon", "Osaka")


def since_phrase(rng: random.Random, when: datetime) -> str:
    earlier = when - timedelta(days=rng.randint(2, 4))
    return rng.choice(("yesterday", "this morning", "last week",
                       WEEKDAY_NAMES[earlier.weekday()]))


def case_params(rng: random.Random, customer: Person, when: datetime) -> dict[str, object]:
    slug = (customer.domain.split(".")[0] if company_of(customer)
            else customer.addr.partition("@")[0].replace(".", "-").replace("_", "-"))
    return {
        "ws": f"{slug}-{rng.choice(WORKSPACE_SUFFIXES)}" if company_of(customer) else slug,
        "browser": rng.choice(BROWSERS),
        "since": since_phrase(rng, when),
        "user": customer.addr,
        "domain": customer.domain,
        "company": company_of(customer) or customer.name or customer.addr,
        "inv": f"INV-2026-{rng.randint(1000, 9999)}",
        "amount": f"{rng.randint(49, 4900)}.{rng.choice(('00', '50', '90'))}",
        "card": f"{rng.randint(0, 9999):04d}",
        "endpoint": rng.choice(ENDPOINTS),
        "code": rng.choice((500, 502, 503, 504, 401, 403, 409, 422)),
        "req": f"req_{rng.getrandbits(64):016x}",
        "n": rng.randint(3, 60),
        "seats": rng.choice((10, 15, 25, 40, 60, 120, 250)),
        "row": rng.randint(12, 4800),
        "version": f"4.{rng.randint(10, 19)}.{rng.randint(0, 9)}",
        "feature": rng.choice(FEATURES),
        "integration": rng.choice(INTEGRATIONS),
        "city": rng.choice(CITIES),
    }


# --------------------------------------------------------------------------
# Attachments
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Attachment:
    filename: str
    data: bytes
    maintype: str
    subtype: str


def tiny_png(rng: random.Random, width: int = 24, height: int = 16) -> bytes:
    """A small 'screenshot': grey window, coloured title bar, red error banner.

    The zlib stream uses a stored (uncompressed) block so the bytes do not depend
    on the zlib build.
    """
    title = (rng.randrange(30, 90), rng.randrange(90, 160), rng.randrange(160, 230))
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            if y < 3:
                pixel = title
            elif 6 <= y < 9 and 2 <= x < width - 2:
                pixel = (220, 53, 69)
            else:
                pixel = (236, 236, 236) if (x + y) % 7 else (224, 224, 224)
            rows.extend(pixel)
    raw = bytes(rows)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data)))

    stored = (b"\x78\x01\x01" + struct.pack("<HH", len(raw), len(raw) ^ 0xFFFF)
              + raw + struct.pack(">I", zlib.adler32(raw)))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", stored)
            + chunk(b"IEND", b""))


def csv_file(name: str, header: str, rows: list[str]) -> Attachment:
    data = "\r\n".join([header] + rows) + "\r\n"
    return Attachment(name, data.encode(), "text", "csv")


def make_attachment(kind: str, rng: random.Random, params: dict) -> Attachment:
    domain, ws = params["domain"], params["ws"]
    people = ("ana", "li", "max", "sam", "noor")
    if kind == "png":
        return Attachment("screenshot.png", tiny_png(rng), "image", "png")
    if kind == "tasks.csv":   # one row with a DD.MM.YYYY date the import rejects
        rows = [f"Task {rng.randint(100, 999)},{rng.choice(people)}@{domain},"
                + (f"2026-11-{rng.randint(1, 28):02d}" if i != 3
                   else f"{rng.randint(1, 28):02d}.11.2026")
                + f",{rng.choice(('open', 'done', 'blocked'))}" for i in range(6)]
        return csv_file(f"import-{ws}.csv", "title,assignee,due_date,status", rows)
    if kind == "users.csv":
        rows = [f"{p}+tessera@{domain},{p.title()},{rng.choice(('member', 'admin', 'guest'))}"
                for p in rng.sample(people, 4)]
        return csv_file("users.csv", "email,name,role", rows)
    if kind == "report.csv":
        rows = [f"2026-10-{rng.randint(1, 20):02d}T{rng.randint(6, 18):02d}:"
                f"{rng.randint(0, 59):02d}:00Z,{rng.choice(people)},"
                f"{rng.choice(('created', 'closed', 'commented'))}" for _ in range(5)]
        return csv_file(f"report-{ws}.csv", "timestamp,user,event", rows)
    raise ValueError(kind)


# --------------------------------------------------------------------------
# Building messages
# --------------------------------------------------------------------------

@dataclass
class Draft:
    """Everything needed to render one message; turned into bytes by ``render``."""
    author: Person
    to: list[Person]
    subject: str
    sent: datetime          # UTC; rendered in the author's zone
    arrival: datetime       # UTC; Received header and mbox From_ line
    text: str
    cc: list[Person] = field(default_factory=list)
    msgid: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    html: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    envelope_from: str | None = None   # None: author's address, "": null sender <>
    report: "DeliveryReport | None" = None


@dataclass
class DeliveryReport:
    notification: str
    per_message: list[tuple[str, str]]
    per_recipient: list[tuple[str, str]]
    original_headers: str


class Ids:
    """Seeded Message-ID and queue-ID factory in the style of the sender's mail client."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.seen: set[str] = set()

    def _hex(self, n: int) -> str:
        return f"{self.rng.getrandbits(4 * n):0{n}x}"

    def _uuid(self) -> str:
        h = self._hex(32)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def message_id(self, p: Person, when: datetime, host: str | None = None) -> str:
        host = host or p.domain
        if p.client == "gmail":
            alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            token = "".join(self.rng.choice(alphabet) for _ in range(36))
            local = f"CA+{token}"
        elif p.client == "outlook":
            server = (f"{self.rng.choice(('AM0PR', 'DB9PR', 'VI1PR', 'PA4PR'))}"
                      f"0{self.rng.randint(1, 9)}MB{self.rng.randint(1000, 9999)}")
            local = server + self._hex(20).upper()
        elif p.client == "apple":
            local = self._uuid().upper()
        elif p.client == "roundcube":
            local = self._hex(32)
        elif p.client == "thunderbird":
            local = self._uuid()
        else:  # machines
            local = f"{when:%Y%m%d%H%M%S}.{self._hex(12).upper()}"
        msgid = f"<{local}@{host}>"
        assert msgid not in self.seen, msgid
        self.seen.add(msgid)
        return msgid

    def queue_id(self) -> str:
        alphabet = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"
        return "4" + "".join(self.rng.choice(alphabet) for _ in range(13))

    def thread_index(self) -> str:
        return base64.b64encode(self.rng.randbytes(22)).decode()


def client_headers(p: Person, subject: str, ids: Ids) -> list[tuple[str, str]]:
    if p.client == "outlook":
        return [("Thread-Topic", strip_prefixes(subject)), ("Thread-Index", ids.thread_index()),
                ("X-Mailer", "Microsoft Outlook 16.0"),
                ("Content-Language", "de-DE" if p.lang == "de" else "en-US")]
    if p.client == "apple":
        return [("X-Mailer", "Apple Mail (2.3826.200.121)")]
    if p.client == "thunderbird":
        return [("User-Agent", "Mozilla Thunderbird")]
    if p.client == "roundcube":
        return [("User-Agent", "Roundcube Webmail/1.6.9")]
    return []


def received_header(author: Person, arrival: datetime, ids: Ids) -> str:
    stamp = format_datetime(team_time(arrival))
    if author in TEAM:
        origin = "from submission.example.test (submission.example.test [10.20.0.15])"
        proto = "ESMTPSA"
    elif author is MAILER_DAEMON:
        return f"by mx.example.test (Postfix) id {ids.queue_id()}; {stamp}"
    else:
        _, host, ip = COMPANIES[author.domain]
        origin = f"from {host} ({host} [{ip}])"
        proto = "ESMTPS"
    return (f"{origin} by mx.example.test (Postfix) with {proto} id {ids.queue_id()} "
            f"for <support@example.test>; {stamp}")


def address_list(people: list[Person]) -> list[Address]:
    return [p.address for p in people]


def render(d: Draft, ids: Ids) -> EmailMessage:
    msg = EmailMessage(policy=POLICY)
    envelope = d.author.addr if d.envelope_from is None else d.envelope_from
    msg["Return-Path"] = f"<{envelope}>"
    msg["Delivered-To"] = "support@example.test"
    msg["Received"] = received_header(d.author, d.arrival, ids)
    msg["From"] = d.author.address
    msg["To"] = address_list(d.to)
    if d.cc:
        msg["Cc"] = address_list(d.cc)
    msg["Subject"] = d.subject
    msg["Date"] = format_datetime(in_zone(d.sent, d.author.zone))
    if d.msgid:
        msg["Message-ID"] = d.msgid
    if d.in_reply_to:
        msg["In-Reply-To"] = d.in_reply_to
    if d.references:
        msg["References"] = " ".join(d.references)
    for name, value in d.extra_headers:
        msg[name] = value
    msg["MIME-Version"] = "1.0"
    if d.report:
        attach_delivery_report(msg, d.report)
    else:
        set_body(msg, d)
    return msg


def transfer_encoding(text: str) -> str | None:
    """7bit for ASCII (stdlib picks), base64 for mostly non-Latin text, else QP."""
    if text.isascii():
        return None
    wide = sum(ord(ch) > 0x2FF for ch in text)
    return "base64" if wide > len(text) * 0.2 else "quoted-printable"


def set_body(msg: EmailMessage, d: Draft) -> None:
    msg.set_content(d.text, cte=transfer_encoding(d.text))
    if d.html:
        msg.add_alternative(d.html, subtype="html", cte=transfer_encoding(d.html))
    for a in d.attachments:
        if a.maintype == "text":
            msg.add_attachment(a.data.decode(), subtype=a.subtype, filename=a.filename,
                               cte="quoted-printable")
        else:
            msg.add_attachment(a.data, maintype=a.maintype, subtype=a.subtype,
                               filename=a.filename)


def attach_delivery_report(msg: EmailMessage, report: DeliveryReport) -> None:
    """multipart/report; report-type=delivery-status (RFC 3464), Postfix flavour."""
    msg["Content-Type"] = "multipart/report; report-type=delivery-status"
    notice = EmailMessage(policy=POLICY)
    notice.set_content(report.notification)
    notice["Content-Description"] = "Notification"
    status = Message(policy=POLICY)
    status["Content-Description"] = "Delivery report"
    status["Content-Type"] = "message/delivery-status"
    blocks = []
    for fields in (report.per_message, report.per_recipient):
        block = Message(policy=POLICY)
        for name, value in fields:
            block[name] = value
        blocks.append(block)
    status.set_payload(blocks)
    headers = EmailMessage(policy=POLICY)
    headers.set_content(report.original_headers, subtype="rfc822-headers")
    headers["Content-Description"] = "Undelivered Message Headers"
    for part in (notice, status, headers):
        msg.attach(part)


def finalize(msg: EmailMessage, rng: random.Random) -> bytes:
    """Seeded MIME boundaries (the stdlib would pick random ones) and clean sub-parts."""
    for part in msg.walk():
        if part is not msg and "MIME-Version" in part:
            del part["MIME-Version"]
        if part.get_content_maintype() == "multipart":
            part.set_boundary(f"=_{rng.getrandbits(64):016x}{rng.getrandbits(32):08x}")
    return EMPTY_FIRST_FOLD.sub(rb"\1: ", msg.as_bytes(policy=POLICY))


# The stdlib folder sometimes moves a whole value to a continuation line and leaves
# "Subject:" alone on the first line (also in delivery-status fields); mail software
# doesn't do that, so the value is pulled back up.
EMPTY_FIRST_FOLD = re.compile(rb"^([A-Za-z][A-Za-z0-9-]*): ?\n ", re.MULTILINE)


def html_body(text: str, quoted: str | None = None) -> str:
    paragraphs = "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>\n"
                         for p in text.strip().split("\n\n"))
    quote = ""
    if quoted:
        quote = ("<blockquote style=\"margin:0 0 0 .8ex;border-left:1px solid #ccc;"
                 f"padding-left:1ex\">{html.escape(quoted).replace(chr(10), '<br>')}"
                 "</blockquote>\n")
    return ("<html>\n<head><meta charset=\"utf-8\"></head>\n<body>\n"
            f"{paragraphs}{quote}</body>\n</html>\n")


PREFIXES = ("re:", "aw:", "fwd:", "fw:", "wg:", "automatic reply:", "out of office:")


def strip_prefixes(subject: str) -> str:
    while True:
        lowered = subject.lower()
        for prefix in PREFIXES:
            if lowered.startswith(prefix):
                subject = subject[len(prefix):].lstrip()
                break
        else:
            return subject


def reply_prefix(p: Person) -> str:
    if p.client == "outlook":
        return "AW: " if p.lang == "de" else "RE: "
    return "Re: "


# --------------------------------------------------------------------------
# Threads
# --------------------------------------------------------------------------

@dataclass
class Mail:
    role: str   # customer | team | forward | auto-reply | bounce | bulk | notification
    draft: Draft
    new_text: str             # the author's own words (quoted by later replies)
    raw: bytes = b""
    thread: "Thread | None" = None

    @property
    def arrival(self) -> datetime:
        return self.draft.arrival

    @property
    def msgid(self) -> str | None:
        return self.draft.msgid


@dataclass
class Step:
    at: datetime
    action: str               # open | chase | reply | respond | forward
    style: str = "standard"   # standard | references-only | subject-only
    sender: Person | None = None
    text: str | None = None
    attachment: bool = False
    no_message_id: bool = False
    transit: timedelta | None = None


@dataclass
class Thread:
    customer: Person
    kind: str                 # prompt | slow | never | vip (scripted, answered)
    opened: datetime
    subject: str
    opening_text: str
    answers: list[str]
    params: dict
    lang: str = "en"          # language of the first message
    attachment_kind: str | None = None
    cc: list[Person] = field(default_factory=list)
    vip: bool = False
    urgent: bool = False
    conversation: bool = False
    tags: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    mails: list[Mail] = field(default_factory=list)
    number: int = 0

    def last(self, role: str) -> Mail:
        return next(m for m in reversed(self.mails) if m.role == role)

    def first_response(self) -> Mail | None:
        return next((m for m in self.mails if m.role == "team"), None)


WRAPPING_CLIENTS = ("thunderbird", "apple", "roundcube")   # Outlook and Gmail don't wrap
WRAP_WIDTH = 72


def as_plain(text: str, client: str) -> str:
    """The text/plain rendition of what someone typed, as their client would send it.

    Thunderbird-like clients hard-wrap at 72 columns (quoted lines are left alone);
    Outlook and Gmail send long lines, so their bodies end up quoted-printable.
    """
    if client not in WRAPPING_CLIENTS:
        return text
    return "\n".join(textwrap.fill(line, WRAP_WIDTH, break_long_words=False,
                                   break_on_hyphens=False)
                     if len(line) > WRAP_WIDTH and not line.startswith(">") else line
                     for line in text.split("\n"))


def customer_text(p: Person, body: str, rng: random.Random, lang: str = "en") -> str:
    signature = p.name or p.addr.partition("@")[0]
    company = company_of(p)
    lines = [rng.choice(GREETINGS[lang]), "", body, "", f"{rng.choice(SIGNOFFS[lang])},",
             signature]
    if company:
        lines.append(company)
    return "\n".join(lines) + "\n"


def short_customer_text(p: Person, body: str) -> str:
    return f"{body}\n\n{p.signature}\n"


def team_text(customer: Person, agent: Person, body: str, waited: timedelta | None) -> str:
    greeting = f"Hi {customer.first}," if customer.first else "Hello,"
    apology = "Sorry for the slow reply.\n\n" if waited and waited > hours(5) else ""
    signer = agent.first if agent is not SUPPORT else "The Tessera Support Team"
    return (f"{greeting}\n\n{apology}{body}\n\nBest regards,\n{signer}\n"
            "Tessera Support | https://help.example.test\n")


def quote(parent: Mail, outlook: bool) -> str:
    d = parent.draft
    sent = in_zone(d.sent, d.author.zone)
    if outlook:
        to = ", ".join(str(p) for p in d.to)
        return (f"\n________________________________\nFrom: {d.author}\n"
                f"Sent: {outlook_date(sent)}\nTo: {to}\nSubject: {d.subject}\n\n"
                f"{parent.new_text}")
    quoted = "\n".join(f"> {line}" if line else ">" for line in parent.new_text.splitlines())
    return f"\nOn {human_date(sent)}, {d.author} wrote:\n{quoted}\n"


def forwarded_block(parent: Mail, outlook: bool) -> str:
    """The forwarded message inline, with its own quoted history."""
    d = parent.draft
    sent = in_zone(d.sent, d.author.zone)
    to = ", ".join(str(p) for p in d.to)
    if outlook:
        head = (f"________________________________\nFrom: {d.author}\n"
                f"Sent: {outlook_date(sent)}\nTo: {to}\nSubject: {d.subject}\n")
    else:
        head = (f"---------- Forwarded message ---------\nFrom: {d.author}\n"
                f"Date: {human_date(sent)}\nSubject: {d.subject}\nTo: {to}\n")
    return f"\n{head}\n{d.text}"


def references_of(parent: Mail) -> list[str]:
    refs = list(parent.draft.references)
    return refs + [parent.msgid] if parent.msgid else refs


class ThreadRenderer:
    """Turns a thread's planned steps into messages, in time order."""

    def __init__(self, rng: random.Random, ids: Ids):
        self.rng = rng
        self.ids = ids

    def render(self, thread: Thread) -> None:
        handlers = {"open": self.open, "chase": self.chase, "reply": self.reply,
                    "respond": self.respond, "forward": self.forward}
        for step in sorted(thread.steps, key=lambda s: s.at):
            mail = handlers[step.action](thread, step)
            mail.thread = thread
            thread.mails.append(mail)

    # -- helpers ----------------------------------------------------------

    def after(self, parent: Mail, at: datetime) -> datetime:
        """Never send before the message being answered has arrived."""
        earliest = parent.arrival + timedelta(seconds=self.rng.randint(60, 300))
        return max(at, earliest)

    def transit(self, author: Person, step: Step) -> timedelta:
        if step.transit is not None:
            return step.transit
        if author in TEAM:
            return timedelta(seconds=self.rng.randint(1, 20))
        return timedelta(seconds=self.rng.randint(3, 180))

    def customer_draft(self, thread: Thread, step: Step, sent: datetime, subject: str,
                       body: str, parent: Mail | None, attachments: list[Attachment]) -> Mail:
        c = thread.customer
        new_text = as_plain(body, c.client)
        quoted = quote(parent, c.client == "outlook") if parent else ""
        with_html = c.client == "outlook" or (c.client == "gmail"
                                               and self.rng.random() < HTML_SHARE_GMAIL)
        d = Draft(author=c, to=[SUPPORT], cc=list(thread.cc), subject=subject, sent=sent,
                  arrival=sent + self.transit(c, step), text=as_plain(new_text + quoted, c.client),
                  html=html_body(body, parent.new_text if parent else None) if with_html else None,
                  attachments=attachments,
                  extra_headers=client_headers(c, subject, self.ids))
        if not step.no_message_id:
            d.msgid = self.ids.message_id(c, sent)
        if parent is not None and step.style != "subject-only":
            if step.style != "references-only":
                d.in_reply_to = parent.msgid
            d.references = references_of(parent)
        return Mail("customer", d, new_text)

    def attachments_for(self, thread: Thread, wanted: bool) -> list[Attachment]:
        if not wanted or not thread.attachment_kind:
            return []
        return [make_attachment(thread.attachment_kind, self.rng, thread.params)]

    # -- actions ----------------------------------------------------------

    def open(self, thread: Thread, step: Step) -> Mail:
        body = customer_text(thread.customer, thread.opening_text, self.rng, thread.lang)
        return self.customer_draft(thread, step, step.at, thread.subject, body, None,
                                   self.attachments_for(thread, step.attachment))

    def chase(self, thread: Thread, step: Step) -> Mail:
        parent = thread.last("customer")
        c = thread.customer
        subject = reply_prefix(c) + thread.subject
        return self.customer_draft(thread, step, self.after(parent, step.at), subject,
                                   short_customer_text(c, step.text), parent,
                                   self.attachments_for(thread, step.attachment))

    def respond(self, thread: Thread, step: Step) -> Mail:
        parent = thread.last("team")
        c = thread.customer
        subject = reply_prefix(c) + strip_prefixes(parent.draft.subject)
        if c.client == "outlook":   # Outlook keeps the other side's prefix: "AW: Re: ..."
            subject = reply_prefix(c) + parent.draft.subject
        return self.customer_draft(thread, step, self.after(parent, step.at), subject,
                                   short_customer_text(c, step.text), parent, [])

    def reply(self, thread: Thread, step: Step) -> Mail:
        parent = thread.last("customer")
        agent = step.sender
        sent = self.after(parent, step.at)
        first = thread.first_response() is None
        waited = sent - thread.mails[0].arrival if first else None
        body = thread.answers.pop(0) if thread.answers else self.rng.choice(TEAM_FOLLOW_UPS)
        new_text = as_plain(team_text(thread.customer, agent, body, waited), agent.client)
        outlook = agent.client == "outlook"
        subject = ("RE: " if outlook else "Re: ") + thread.subject
        cc = list(thread.cc) + ([SUPPORT] if agent is not SUPPORT else [])
        d = Draft(author=agent, to=[thread.customer], cc=cc, subject=subject, sent=sent,
                  arrival=sent + self.transit(agent, step),
                  text=as_plain(new_text + quote(parent, outlook), agent.client),
                  msgid=self.ids.message_id(agent, sent, "example.test"),
                  extra_headers=client_headers(agent, subject, self.ids))
        if agent is not SUPPORT:
            d.extra_headers.append(("Reply-To", "Tessera Support <support@example.test>"))
        if step.style != "subject-only":
            if step.style != "references-only":
                d.in_reply_to = parent.msgid
            d.references = references_of(parent)
        return Mail("team", d, new_text)

    def forward(self, thread: Thread, step: Step) -> Mail:
        parent = thread.last("customer")
        agent = step.sender
        sent = self.after(parent, step.at)
        outlook = agent.client == "outlook"
        note = step.text or self.rng.choice(FORWARD_NOTES)
        new_text = as_plain(f"Hi Maria,\n\n{note}\n\n{agent.first}\n", agent.client)
        forwarded = forwarded_block(parent, outlook)
        subject = ("FW: " if outlook else "Fwd: ") + thread.subject
        cc = ([DIRECTOR] if thread.vip else []) + [SUPPORT]
        d = Draft(author=agent, to=[MANAGER], cc=cc, subject=subject, sent=sent,
                  arrival=sent + self.transit(agent, step),
                  text=as_plain(new_text + forwarded, agent.client),
                  msgid=self.ids.message_id(agent, sent, "example.test"),
                  references=references_of(parent),
                  extra_headers=client_headers(agent, subject, self.ids))
        return Mail("forward", d, new_text)


# --------------------------------------------------------------------------
# Planning regular threads
# --------------------------------------------------------------------------

def sample_day(rng: random.Random) -> date:
    days = [WINDOW_START.date() + timedelta(days=i)
            for i in range((WINDOW_END.date() - WINDOW_START.date()).days + 1)]
    weights = [1.0 if d.weekday() < 5 else 0.2 for d in days]
    return rng.choices(days, weights)[0]


LOCAL_HOUR_WEIGHTS = ([0.15] * 7 + [1.0] + [4.0] * 10 + [1.5] * 4 + [0.5] * 2)


def sample_customer_time(rng: random.Random, customer: Person, latest: datetime) -> datetime:
    """A moment the customer plausibly writes: mostly their business hours."""
    while True:
        hour = rng.choices(range(24), LOCAL_HOUR_WEIGHTS)[0]
        naive = datetime.combine(sample_day(rng), dtime(hour, rng.randrange(60),
                                                         rng.randrange(60)))
        when = from_zone_local(naive, customer.zone)
        if WINDOW_START <= when <= latest:
            return when


def sample_team_hours_time(rng: random.Random) -> datetime:
    while True:
        day = sample_day(rng)
        if day.weekday() >= 5:
            continue
        naive = datetime.combine(day, dtime(8, 45)) + timedelta(
            seconds=rng.randrange(int(6.75 * 3600)))
        when = from_team_local(naive)
        if WINDOW_START <= when <= WINDOW_END - hours(5):
            return when


def pick_customer(rng: random.Random, awake_at: datetime | None = None) -> Person:
    while True:
        c = rng.choices(CUSTOMERS, CUSTOMER_WEIGHTS)[0]
        if awake_at is None or 7 <= in_zone(awake_at, c.zone).hour <= 21:
            return c


ENGLISH_CASES = tuple(c for c in CASES if c.lang == "en")


def choose_case(rng: random.Random, customer: Person, used_subjects: set[str],
                params: dict) -> tuple[Case, str]:
    """A case that fits the customer, and its subject (unique within the mailbox)."""
    own_language = tuple(c for c in CASES if c.lang == customer.lang != "en")
    while True:
        if own_language and rng.random() < LOCALIZED_SHARE:
            case = rng.choice(own_language)
        else:
            case = rng.choice(ENGLISH_CASES)
        if company_of(customer) is None and (case.companies_only
                                             or "{company}" in case.subject):
            continue
        subject = case.subject.format(**params)
        if subject.lower() not in used_subjects:
            used_subjects.add(subject.lower())
            return case, subject


def plan_regular_threads(rng: random.Random, used_subjects: set[str]) -> list[Thread]:
    kinds = ["prompt"] * PROMPT_THREADS + ["slow"] * SLOW_THREADS + ["never"] * NEVER_THREADS
    rng.shuffle(kinds)
    threads = []
    for kind in kinds:
        if kind == "prompt":
            opened = sample_team_hours_time(rng)
            customer = pick_customer(rng, awake_at=opened)
        else:
            customer = pick_customer(rng)
            latest = WINDOW_END - (hours(12) if kind == "never" else hours(36))
            opened = sample_customer_time(rng, customer, latest)
        params = case_params(rng, customer, opened)
        case, subject = choose_case(rng, customer, used_subjects, params)
        thread = Thread(customer, kind, opened, subject, case.opening.format(**params),
                        [case.answer.format(**params)], params, case.lang,
                        attachment_kind=case.attachment)
        thread.conversation = kind != "never" and rng.random() < CONVERSATION_SHARE
        threads.append(thread)
    return threads


def take(rng: random.Random, threads: list[Thread], n: int, tag: str, eligible) -> list[Thread]:
    """Tag ``n`` random untagged threads satisfying ``eligible``."""
    pool = [t for t in threads if not t.tags and eligible(t)]
    chosen = rng.sample(pool, n)
    for t in chosen:
        t.tags.append(tag)
    return chosen


def assign_special_cases(rng: random.Random, threads: list[Thread]) -> None:
    answered = lambda t: t.kind != "never"
    quiet = lambda t: answered(t) and not t.conversation
    for style, count in OUT_OF_OFFICE.items():
        outlook = style == "exchange"
        take(rng, threads, count, f"ooo:{style}",
             lambda t: quiet(t) and (t.customer.client == "outlook") == outlook)
    bounce_cc = take(rng, threads, 1, "bounce:5.1.1",
                     lambda t: quiet(t) and t.kind == "prompt"
                     and t.customer.domain == TYPO_COLLEAGUE.domain
                     and t.customer.name != TYPO_COLLEAGUE.name)[0]
    bounce_cc.cc = [TYPO_COLLEAGUE]
    take(rng, threads, 1, "bounce:5.2.2", lambda t: quiet(t) and t.kind == "prompt")
    take(rng, threads, REFERENCES_ONLY_REPLIES, "references-only", answered)
    take(rng, threads, SUBJECT_ONLY_TEAM_REPLIES, "subject-only",
         lambda t: answered(t) and t.subject.isascii())
    for t in take(rng, threads, SUBJECT_ONLY_CUSTOMER_REPLIES, "customer-subject-only",
                  lambda t: answered(t) and t.customer.domain == "initech.example"):
        t.conversation = True
    take(rng, threads, INTERNAL_FORWARDS, "forward", lambda t: t.kind in ("slow", "never"))
    for t in take(rng, threads, CC_THREADS, "cc",
                  lambda t: answered(t) and colleagues_of(t.customer)):
        t.cc = [rng.choice(colleagues_of(t.customer))]
    long_one = take(rng, threads, 1, "long-subject", lambda t: t.kind == "slow")[0]
    long_one.subject, long_one.lang, long_one.attachment_kind = LONG_SUBJECT, "en", None
    long_one.opening_text = LONG_SUBJECT_OPENING
    long_one.answers = [LONG_SUBJECT_ANSWER]
    take(rng, threads, 1, "greylisted", lambda t: t.kind == "prompt")


def first_reply_time(rng: random.Random, thread: Thread) -> datetime:
    if thread.kind == "prompt":
        r = rng.random()
        delay = (minutes(rng.uniform(5, 59)) if r < 0.25 else
                 minutes(rng.uniform(60, 180)) if r < 0.90 else
                 minutes(rng.uniform(181, 225)))
        return next_working_time(thread.opened) + delay
    target = thread.opened + hours(rng.uniform(*SLOW_REPLY_HOURS))
    if is_working_time(target):
        return target
    return next_working_time(target) + minutes(rng.uniform(5, 75))


def choose_agent(rng: random.Random, thread: Thread) -> Person:
    if any(t.startswith(("ooo:", "bounce:")) for t in thread.tags):
        return SUPPORT   # the auto-reply / DSN must come back to the shared mailbox
    if thread.tags and thread.tags[0] in ("references-only", "subject-only"):
        return DANA      # Outlook
    if rng.random() < SHARED_MAILBOX_SHARE:
        return SUPPORT
    return rng.choices(AGENTS, AGENT_WEIGHTS)[0]


def schedule(rng: random.Random, thread: Thread) -> None:
    """Plan the steps of a regular thread (times only; texts are filled in on render)."""
    steps = thread.steps
    opening = Step(thread.opened, "open", attachment=bool(thread.attachment_kind))
    if "greylisted" in thread.tags:
        opening.transit = minutes(17) + timedelta(seconds=rng.randint(0, 59))
    steps.append(opening)

    reply_at = first_reply_time(rng, thread) if thread.kind != "never" else None
    horizon = reply_at or WINDOW_END
    if reply_at and reply_at > WINDOW_END - minutes(30):
        reply_at, horizon = None, WINDOW_END

    # Chasers before the reply (or forever, if it never comes).
    if opening.attachment and horizon - thread.opened > hours(1) \
            and rng.random() < FORGOT_ATTACHMENT_SHARE:
        opening.attachment = False
        steps.append(Step(thread.opened + minutes(rng.uniform(3, 25)), "chase",
                          text=FORGOT_ATTACHMENT, attachment=True))
    elif thread.kind != "prompt" and rng.random() < CHASER_SHARE[thread.kind]:
        gap = horizon - thread.opened
        if gap > hours(3):
            at = thread.opened + min(hours(rng.uniform(2, 48)), gap - hours(1))
            steps.append(Step(at, "chase", text=rng.choice(CHASERS)))
            if thread.kind == "never" and rng.random() < SECOND_CHASER_SHARE \
                    and horizon - at > hours(26):
                steps.append(Step(at + hours(rng.uniform(24, 48)), "chase",
                                  text=rng.choice(CHASERS)))

    agent = choose_agent(rng, thread)
    if "forward" in thread.tags:
        forwarder = agent if agent is not SUPPORT else rng.choice(AGENTS)
        gap = horizon - thread.opened
        delay = min(gap * rng.uniform(0.3, 0.8), hours(rng.uniform(1, 30)))
        steps.append(Step(thread.opened + delay, "forward", sender=forwarder))
    if reply_at is None:
        return
    style = thread.tags[0] if thread.tags and thread.tags[0] in (
        "references-only", "subject-only") else "standard"
    steps.append(Step(reply_at, "reply", style=style, sender=agent))

    if thread.conversation:
        schedule_conversation(rng, thread, reply_at, agent)


def schedule_conversation(rng: random.Random, thread: Thread, after: datetime,
                          agent: Person) -> None:
    rounds = 1 if rng.random() < 0.6 else 2
    forced_style = "subject-only" if "customer-subject-only" in thread.tags else "standard"
    for n in range(rounds):
        last_round = n == rounds - 1
        customer_at = after + hours(rng.uniform(0.25, 24))
        if customer_at > WINDOW_END - minutes(30):
            return
        thanks_only = last_round and forced_style == "standard" \
            and rng.random() < THANKS_ONLY_SHARE
        text = rng.choice(CUSTOMER_THANKS if thanks_only else CUSTOMER_FOLLOW_UPS)
        thread.steps.append(Step(customer_at, "respond", text=text,
                                 style=forced_style if n == 0 else "standard"))
        if thanks_only:
            return
        after = next_working_time(customer_at + minutes(10)) + minutes(rng.uniform(10, 150))
        if after > WINDOW_END:
            return
        thread.steps.append(Step(after, "reply", sender=agent))


def drop_message_id_once(rng: random.Random, threads: list[Thread]) -> None:
    """One chaser without Message-ID; chosen so that nothing needs to reference it."""
    candidates = [t for t in threads if t.kind == "never"
                  and [s.action for s in sorted(t.steps, key=lambda s: s.at)][-1] == "chase"
                  and "forward" not in t.tags]
    thread = rng.choice(candidates)
    thread.tags.append("no-message-id")
    max(thread.steps, key=lambda s: s.at).no_message_id = True


# --------------------------------------------------------------------------
# VIP threads (scripted)
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class VipScenario:
    customer: Person
    opened: str                       # team-local "YYYY-MM-DD HH:MM"
    subject: str
    body: str
    answer: str | None                # None: never answered
    reply_after: timedelta | None
    agent: Person | None = None
    urgent: bool = False
    chasers: tuple[tuple[timedelta, str], ...] = ()
    forward: tuple[timedelta, Person, str] | None = None
    # (delay after previous team reply, customer text, team answer or None, team delay)
    rounds: tuple[tuple[timedelta, str, str | None, timedelta], ...] = ()
    references_only_followup: bool = False


VIP_SCENARIOS = (
    VipScenario(
        HARRIET, "2026-10-06 10:12", "URGENT: Tessera down for all BigCorp users (HTTP 503)",
        "Tessera is down for all of our users - every page returns HTTP 503. This is "
        "blocking about 2,000 people. Please treat this as a P1.",
        "We are aware of the outage and our engineers are on it. A failing load balancer "
        "node is being replaced right now; I'll update you within 30 minutes.",
        minutes(18), ALICE, urgent=True,
        rounds=((minutes(35), "Most users are back, but the London office still gets 503s.",
                 "The last node has been replaced and the London office should be back too. "
                 "We'll send an incident report by Friday.", minutes(14)),
                (minutes(25), "Confirmed, everyone is back. Thanks for the quick response.",
                 None, minutes(0)))),
    VipScenario(
        RAJESH, "2026-10-10 07:25", "Outage: SSO login failing for entire APAC region",
        "None of our APAC users can log in via SSO since about 30 minutes ago. They get "
        "\"Authentication failed\" after the IdP redirect. Please help urgently.",
        "Sorry for the wait - our on-call engineer found an expired intermediate certificate "
        "on the APAC SSO endpoint. It has been replaced and logins work again.",
        hours(3) + minutes(20), BOB, urgent=True,
        chasers=((minutes(50), "Still down. Please respond ASAP, this is a P1 for us."),)),
    VipScenario(
        TOM, "2026-10-15 17:48", "API down? All requests timing out from our US integration",
        "All API calls from our US integration have been timing out for the last 20 minutes. "
        "Our order sync is stuck. Is there an incident?",
        "Apologies for the late answer. A network issue between our US edge and the API "
        "cluster caused the timeouts yesterday evening; it was resolved at 21:40 CEST.",
        hours(15) + minutes(32), CHEN, urgent=True,
        chasers=((hours(1) + minutes(40), "Any update?? This is critical for us."),),
        forward=(hours(2) + minutes(10), CHEN,
                 "VIP (BigCorp) reports the API is down for them. I can't reproduce it from "
                 "here - who is on call tonight?"),
        rounds=((hours(7) + minutes(5), "Thanks, our sync caught up overnight.", None,
                 minutes(0)),)),
    VipScenario(
        INGRID, "2026-10-27 14:05", "URGENT - reporting module down since this morning",
        "The reporting module has been down since this morning for everyone at BigCorp: "
        "all reports show \"Something went wrong\". Our board meeting is tomorrow.",
        None, None, urgent=True,
        chasers=((hours(1) + minutes(30), "Hello? Is anyone looking at this?"),
                 (hours(20), "Still no answer. I will have to escalate this internally.")),
        forward=(hours(2), DANA,
                 "BigCorp says reporting is down. Engineering is investigating, but nobody "
                 "has answered the customer yet - can you call them?")),
    VipScenario(
        HARRIET, "2026-10-12 11:30", "Renewal quote for 2027 (500 seats)",
        "Could you send us a renewal quote for 2027 for 500 seats on the Enterprise plan?",
        "Please find the renewal details below; our account manager will also send you the "
        "formal quote as a PDF today.",
        hours(2) + minutes(5), SUPPORT),
    VipScenario(
        RAJESH, "2026-10-21 09:10", "Question about audit log retention period",
        "How long are audit logs retained on the Enterprise plan?",
        "Audit logs are retained for 400 days on the Enterprise plan.",
        minutes(40), BOB,
        rounds=((hours(1) + minutes(5), "Thanks. Can we export them to our SIEM?",
                 "Yes - there is a streaming export to Splunk and any HTTPS endpoint, "
                 "see Settings > Security > Audit log.", minutes(50)),),
        references_only_followup=True),
    VipScenario(
        TOM, "2026-10-22 19:40", "Please add two new admins to the BigCorp workspace",
        "Could you add anna.k@bigcorp.example and li.wong@bigcorp.example as admins to our "
        "workspace? Our own admin is out this week.",
        "Both have been added as admins; they'll receive an invitation email.",
        hours(13) + minutes(55), DANA),
)


def vip_thread(rng: random.Random, s: VipScenario) -> Thread:
    """The scripted thread; every step gets a few seconds of jitter to look sent by hand."""
    opened = from_team_local(datetime.strptime(s.opened, "%Y-%m-%d %H:%M"))
    answers = [s.answer] if s.answer else []
    answers += [team for _, _, team, _ in s.rounds if team]
    thread = Thread(s.customer, "never" if s.answer is None else "vip", opened, s.subject,
                    s.body, answers, {}, vip=True, urgent=s.urgent, tags=["vip"])
    thread.steps.append(Step(opened, "open"))
    for delay, text in s.chasers:
        thread.steps.append(Step(opened + delay, "chase", text=text))
    if s.forward:
        delay, agent, note = s.forward
        thread.steps.append(Step(opened + delay, "forward", sender=agent, text=note))
    if s.answer is not None:
        at = opened + s.reply_after
        thread.steps.append(Step(at, "reply", sender=s.agent))
        for n, (delay, text, team, team_delay) in enumerate(s.rounds):
            at += delay
            style = "references-only" if s.references_only_followup and n == 0 else "standard"
            thread.steps.append(Step(at, "respond", text=text, style=style))
            if team:
                at += team_delay
                thread.steps.append(Step(at, "reply", sender=s.agent))
    for step in thread.steps:
        step.at += timedelta(seconds=rng.randint(0, 59))
    return thread


# --------------------------------------------------------------------------
# Automatic mail
# --------------------------------------------------------------------------

def out_of_office(rng: random.Random, ids: Ids, thread: Thread, style: str) -> Mail:
    reply = thread.first_response()
    c = thread.customer
    sent = reply.arrival + timedelta(seconds=rng.randint(4, 90))
    back = in_zone(sent, c.zone).date() + timedelta(days=rng.randint(3, 12))
    while back.weekday() >= 5:
        back += timedelta(days=1)
    back_text = f"{WEEKDAY_NAMES[back.weekday()]}, {back.day} {MONTH_NAMES[back.month - 1]}"
    notice = textwrap.fill(f"Thank you for your message. I am out of the office until "
                           f"{back_text} with limited access to email. For urgent matters "
                           f"please contact my colleagues at team@{c.domain}.", WRAP_WIDTH)
    text = f"{notice}\n\n{c.name or c.addr}\n"
    d = Draft(author=c, to=[SUPPORT], subject=f"Out of Office: {reply.draft.subject}",
              sent=sent, arrival=sent + timedelta(seconds=rng.randint(2, 30)), text=text,
              msgid=ids.message_id(c, sent), in_reply_to=reply.msgid,
              references=references_of(reply))
    if style == "rfc3834":
        d.extra_headers = [("Auto-Submitted", "auto-replied")]
        if rng.random() < 0.5:
            d.envelope_from = ""
    elif style == "exchange":
        d.subject = f"Automatic reply: {reply.draft.subject}"
        d.envelope_from = ""
        d.extra_headers = [("Thread-Topic", thread.subject),
                           ("Thread-Index", ids.thread_index()),
                           ("X-Auto-Response-Suppress", "All"),
                           ("X-MS-Exchange-Inbox-Rules-Loop", c.addr)]
        d.html = html_body(text)
    else:  # classic vacation(1)-style: nothing but X-Autoreply marks it
        d.subject = f"Re: {thread.subject}"
        d.extra_headers = [("X-Autoreply", "yes")]
    return Mail("auto-reply", d, text, thread=thread)


def header_lines(raw: bytes, names: tuple[str, ...]) -> str:
    """The named header fields of a rendered message, verbatim (folded, encoded)."""
    head = raw.split(b"\n\n", 1)[0].decode("ascii")
    kept, keep = [], False
    for line in head.split("\n"):
        if line[:1] not in (" ", "\t"):
            keep = line.partition(":")[0].lower() in names
        if keep:
            kept.append(line)
    return "\n".join(kept) + "\n"


def bounce(rng: random.Random, ids: Ids, thread: Thread, status: str) -> Mail:
    reply = thread.first_response()
    if status == "5.1.1":
        rcpt = TYPO_COLLEAGUE.addr
        _, host, ip = COMPANIES[TYPO_COLLEAGUE.domain]
        remote = f"{host}[{ip}]"
        diagnostic = (f"smtp; 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown "
                      "in virtual mailbox table")
    else:
        rcpt = thread.customer.addr
        _, host, ip = COMPANIES[thread.customer.domain]
        remote = f"{host}[{ip}]"
        diagnostic = f"smtp; 552 5.2.2 <{rcpt}>: Mailbox full, quota exceeded"
    sent = reply.arrival + timedelta(seconds=rng.randint(2, 40))
    queue = ids.queue_id()
    original = header_lines(reply.raw, ("from", "to", "cc", "subject", "date", "message-id",
                                        "in-reply-to", "references"))
    notification = (
        "This is the mail system at host mx.example.test.\n\n"
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients. It's attached below.\n\n"
        "For further assistance, please send mail to postmaster.\n\n"
        "If you do so, please include this problem report. You can\n"
        "delete your own text from the attached returned message.\n\n"
        "                   The mail system\n\n"
        + textwrap.fill(f"<{rcpt}>: host {remote} said: {diagnostic.partition('; ')[2]} "
                        "(in reply to RCPT TO command)", WRAP_WIDTH, subsequent_indent="    ")
        + "\n")
    report = DeliveryReport(
        notification,
        per_message=[("Reporting-MTA", "dns; mx.example.test"),
                     ("X-Postfix-Queue-ID", queue),
                     ("X-Postfix-Sender", "rfc822; support@example.test"),
                     ("Arrival-Date", format_datetime(team_time(reply.arrival)))],
        per_recipient=[("Final-Recipient", f"rfc822; {rcpt}"),
                       ("Original-Recipient", f"rfc822;{rcpt}"),
                       ("Action", "failed"), ("Status", status),
                       ("Remote-MTA", f"dns; {remote.partition('[')[0]}"),
                       ("Diagnostic-Code", diagnostic)],
        original_headers=original)
    d = Draft(author=MAILER_DAEMON, to=[SUPPORT], subject="Undelivered Mail Returned to Sender",
              sent=sent, arrival=sent, text="", envelope_from="",
              msgid=f"<{team_time(sent):%Y%m%d%H%M%S}.{queue}@mx.example.test>",
              extra_headers=[("Auto-Submitted", "auto-replied")], report=report)
    return Mail("bounce", d, "", thread=thread)


def newsletter(rng: random.Random, ids: Ids, day: int, issue: int) -> Mail:
    sent = from_zone_local(datetime(2026, 10, day, 6, 30) + minutes(rng.randint(0, 20)), "UK")
    stories = rng.sample((
        "How we cut our on-call pages by 60%",
        "Postmortem culture: writing blameless incident reports",
        "SLAs vs. SLOs for support teams - what to measure",
        "Five dashboards every support lead should have",
        "Scaling a help center from 1 to 10 languages",
        "The hidden cost of auto-responders",
        "Email threading: why In-Reply-To isn't enough",
        "Hiring your first support engineer",
    ), 3)
    text = (f"SaaS Ops Weekly - Issue #{issue}\n\n"
            + "".join(f"* {s}\n  https://saasweekly.example/{issue}/{i + 1}\n\n"
                      for i, s in enumerate(stories))
            + "You are receiving this because support@example.test subscribed to SaaS Ops "
              "Weekly.\nUnsubscribe: https://saasweekly.example/unsubscribe?u=7f3a\n")
    d = Draft(author=NEWSLETTER, to=[SUPPORT], subject=f"SaaS Ops Weekly #{issue}: "
              f"{stories[0]}", sent=sent, arrival=sent + timedelta(seconds=rng.randint(5, 600)),
              text=text, html=html_body(text),
              msgid=ids.message_id(NEWSLETTER, sent, "news.saasweekly.example"),
              envelope_from=f"bounce-{issue}-support=example.test@news.saasweekly.example",
              extra_headers=[
                  ("List-Id", "SaaS Ops Weekly <weekly.saasweekly.example>"),
                  ("List-Unsubscribe", "<https://saasweekly.example/unsubscribe?u=7f3a>, "
                                       "<mailto:unsubscribe@news.saasweekly.example>"),
                  ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
                  ("Precedence", "bulk")])
    return Mail("bulk", d, text)


def monitoring_alert(rng: random.Random, ids: Ids, when: datetime, check: str,
                     resolved: bool) -> Mail:
    state = "RESOLVED" if resolved else "FIRING"
    text = (f"[{state}] {check}\n\nEnvironment: production (eu-central-1)\n"
            f"{'Resolved' if resolved else 'Started'}: {format_datetime(when)}\n"
            "Runbook: https://wiki.example.test/runbooks/api-gateway\n\n"
            "-- \nThis is an automated message from Tessera Monitoring. Do not reply.\n")
    d = Draft(author=MONITORING, to=[SUPPORT], subject=f"[{state}] {check}", sent=when,
              arrival=when + timedelta(seconds=rng.randint(2, 45)), text=text,
              msgid=ids.message_id(MONITORING, when, "monitoring.example"),
              extra_headers=[("Auto-Submitted", "auto-generated"),
                             ("X-Alert-State", state.lower())])
    return Mail("notification", d, text)


def monitoring_incidents(rng: random.Random, ids: Ids, api_outage: Thread,
                         reports_outage: Thread) -> list[Mail]:
    """Alert pairs; two line up with VIP outages, one is unrelated."""
    checks = ("api-gateway: 5xx rate above 5% for 5 minutes",
              "reports-worker: queue backlog above 10,000 jobs",
              "search: p99 latency above 2s")
    starts = [api_outage.opened - minutes(7), reports_outage.opened - hours(5),
              sample_team_hours_time(rng)]
    mails = []
    for check, start in zip(checks, starts):
        mails.append(monitoring_alert(rng, ids, start, check, resolved=False))
        mails.append(monitoring_alert(rng, ids, start + minutes(rng.uniform(25, 70)), check,
                                      resolved=True))
    return mails


# --------------------------------------------------------------------------
# Assembling, writing and verifying the mailbox
# --------------------------------------------------------------------------

def materialize(mail: Mail, ids: Ids, rng: random.Random) -> Mail:
    mail.raw = finalize(render(mail.draft, ids), rng)
    return mail


def build_threads(rng: random.Random, ids: Ids) -> list[Thread]:
    used_subjects = {s.subject.lower() for s in VIP_SCENARIOS}
    threads = plan_regular_threads(rng, used_subjects)
    assign_special_cases(rng, threads)
    for thread in threads:
        schedule(rng, thread)
    drop_message_id_once(rng, threads)
    threads += [vip_thread(rng, s) for s in VIP_SCENARIOS]
    threads.sort(key=lambda t: t.opened)
    renderer = ThreadRenderer(rng, ids)
    for number, thread in enumerate(threads, 1):
        thread.number = number
        renderer.render(thread)
        for mail in thread.mails:
            materialize(mail, ids, rng)
    return threads


def automatic_mail(rng: random.Random, ids: Ids, threads: list[Thread]) -> list[Mail]:
    mails = []
    for thread in threads:
        for tag in thread.tags:
            if tag.startswith("ooo:"):
                mails.append(out_of_office(rng, ids, thread, tag.partition(":")[2]))
            elif tag.startswith("bounce:"):
                mails.append(bounce(rng, ids, thread, tag.partition(":")[2]))
    for issue, day in enumerate(NEWSLETTER_DAYS, 141):
        mails.append(newsletter(rng, ids, day, issue))
    vip = {t.subject: t for t in threads if t.vip}
    mails += monitoring_incidents(rng, ids, vip[VIP_SCENARIOS[0].subject],
                                  vip[VIP_SCENARIOS[3].subject])
    return [materialize(m, ids, rng) for m in mails]


def write_mbox(mails: list[Mail], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    box = mailbox.mbox(tmp)
    try:
        for mail in mails:
            message = mailbox.mboxMessage(mail.raw)
            envelope = (mail.draft.author.addr if mail.draft.envelope_from is None
                        else mail.draft.envelope_from)
            message.set_from(envelope or "MAILER-DAEMON", mail.arrival.utctimetuple())
            box.add(message)
        box.flush()
    finally:
        box.close()
    tmp.replace(path)


def verify(path: Path, mails: list[Mail]) -> list[str]:
    """Re-read the mbox like a consumer would and check its invariants."""
    problems = []
    box = mailbox.mbox(path)
    parsed = []
    for key in box.keys():
        envelope = box.get_message(key).get_from()
        arrival = datetime.strptime(envelope.split(None, 1)[1], "%a %b %d %H:%M:%S %Y")
        msg = email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
        parsed.append((arrival.replace(tzinfo=timezone.utc), msg))
    box.close()

    if len(parsed) != len(mails):
        problems.append(f"{len(parsed)} messages in the mbox, {len(mails)} generated")
    arrivals = [a for a, _ in parsed]
    if arrivals != sorted(arrivals):
        problems.append("From_ lines are not in arrival order")
    if not (WINDOW_START <= arrivals[0] and arrivals[-1] <= WINDOW_END + minutes(10)):
        problems.append("arrivals outside the window")
    ids = [m["Message-ID"].strip() for _, m in parsed if m["Message-ID"]]
    if len(ids) != len(set(ids)) or len(parsed) - len(ids) != 1:
        problems.append("Message-IDs not unique, or not exactly one message without one")
    known = set(ids)
    for arrival, msg in parsed:
        head = msg.as_bytes().split(b"\n\n", 1)[0]
        if any(line.rstrip() != line for line in head.split(b"\n")):
            problems.append(f"{msg['Subject']!r}: header line with trailing whitespace")
        subject = msg["Subject"]
        for part in msg.walk():
            if part.defects:
                problems.append(f"{subject!r}: defects {part.defects}")
        for name in ("From", "To", "Subject", "Date", "MIME-Version", "Content-Type",
                     "Received"):
            if msg[name] is None:
                problems.append(f"{subject!r}: no {name}")
        sent = msg["Date"].datetime
        if sent.tzinfo is None or not timedelta(0) <= arrival - sent <= minutes(20):
            problems.append(f"{subject!r}: Date {sent} vs arrival {arrival}")
        refs = (msg["In-Reply-To"] or "").split() + (msg["References"] or "").split()
        for ref in refs:
            if ref not in known:
                problems.append(f"{subject!r}: dangling reference {ref}")
        received = parsedate_to_datetime(str(msg["Received"]).rpartition(";")[2])
        if received != arrival:
            problems.append(f"{subject!r}: Received date {received} != From_ {arrival}")
    return problems


# --------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------

def first_response_delay(thread: Thread) -> timedelta | None:
    reply = thread.first_response()
    return reply.arrival - thread.mails[0].arrival if reply else None


def awaiting_reply(thread: Thread) -> bool:
    """Last human message (ignoring forwards and automatic mail) is the customer's."""
    return thread.mails[-1].role == "customer" if thread.mails else False


def fmt_delay(delay: timedelta | None) -> str:
    if delay is None:
        return "never"
    total = int(delay.total_seconds() // 60)
    return f"{total // 60}h{total % 60:02d}"


def summarize(threads: list[Thread], mails: list[Mail]) -> dict[str, object]:
    delays = [first_response_delay(t) for t in threads]
    answered = [d for d in delays if d is not None]
    vip = [t for t in threads if t.vip]
    roles = {}
    for m in mails:
        roles[m.role] = roles.get(m.role, 0) + 1
    return {
        "messages": len(mails),
        "roles": roles,
        "threads": len(threads),
        "vip_threads": len(vip),
        "urgent_vip_threads": sum(t.urgent for t in vip),
        "within_1h": sum(d <= VIP_DEADLINE for d in answered),
        "on_time": sum(d <= ON_TIME for d in answered),
        "late": sum(d > ON_TIME for d in answered),
        "never": len(delays) - len(answered),
        "slow_5_30h": sum(hours(5) <= d <= hours(30) for d in answered),
        "over_30h": sum(d > hours(30) for d in answered),
        "vip_breaches": sum(first_response_delay(t) is None
                            or first_response_delay(t) > VIP_DEADLINE for t in vip),
        "urgent_vip_breaches": sum(first_response_delay(t) is None
                                   or first_response_delay(t) > VIP_DEADLINE
                                   for t in vip if t.urgent),
        "long_threads": sum(len([m for m in t.mails if m.role != "forward"]) >= 3
                            for t in threads),
        "max_thread": max(len(t.mails) for t in threads),
        "with_chasers": sum(any(s.action == "chase" for s in t.steps) for t in threads),
        "awaiting_at_end": sum(awaiting_reply(t) for t in threads),
        "reopened_awaiting": sum(awaiting_reply(t) and t.first_response() is not None
                                 for t in threads),
    }


def summary_lines(s: dict) -> list[str]:
    r = s["roles"]
    automatic = r["auto-reply"] + r["bounce"] + r["bulk"] + r["notification"]
    return [
        f"messages: {s['messages']} (customer {r['customer']}, team replies {r['team']}, "
        f"internal forwards {r['forward']}, automatic {automatic})",
        f"customer threads: {s['threads']} ({s['vip_threads']} VIP)",
        f"first response: within 1h {s['within_1h']}, within 4h (on time) {s['on_time']}, "
        f"late {s['late']}, never {s['never']}",
        f"late replies: {s['slow_5_30h']} after 5-30h, {s['over_30h']} after more than 30h "
        "(weekends)",
        f"automatic mail: {automatic} ({r['auto-reply']} out-of-office, {r['bounce']} bounces, "
        f"{r['bulk']} newsletters, {r['notification']} monitoring alerts)",
        f"VIP (bigcorp.example): {s['vip_threads']} threads, {s['urgent_vip_threads']} urgent; "
        f"1h deadline breached by {s['vip_breaches']} ({s['urgent_vip_breaches']} urgent)",
        f"threads with 3+ messages: {s['long_threads']} (longest {s['max_thread']}); "
        f"with chasers: {s['with_chasers']}",
        f"awaiting a team reply at the snapshot: {s['awaiting_at_end']} "
        f"({s['reopened_awaiting']} of them after an earlier team reply)",
    ]


def tagged(threads: list[Thread], prefix: str) -> list[Thread]:
    return [t for t in threads if any(tag.startswith(prefix) for tag in t.tags)]


def thread_ref(t: Thread) -> str:
    return f"#{t.number} \"{t.subject}\" ({t.customer.addr})"


def readme(threads: list[Thread], lines: list[str]) -> str:
    vip_rows = "\n".join(
        f"| {t.subject} | {t.mails[0].arrival:%Y-%m-%d %H:%M:%S} | "
        f"{'yes' if t.urgent else 'no'} | {fmt_delay(first_response_delay(t))} |"
        for t in threads if t.vip)

    def listing(prefix: str) -> str:
        lines = []
        for t in tagged(threads, prefix):
            detail = next(tag for tag in t.tags if tag.startswith(prefix))[len(prefix):]
            lines.append(f"  - {thread_ref(t)}" + (f": {detail}" if detail else ""))
        return "\n".join(lines)

    never_answered = "\n".join(f"  - {thread_ref(t)}" + (" (VIP)" if t.vip else "")
                               for t in threads if t.first_response() is None)
    return f"""# Example support mailbox

`support-inbox.mbox` is four weeks (Thu 2026-10-01 to Wed 2026-10-28) of the support
mailbox of Tessera, a SaaS company whose mail domain is `example.test`. Inbox and
Sent folder are merged into one mbox in arrival order. The `From_` line of every
message is its arrival time in UTC (the `Received:` header from `mx.example.test`
carries the same instant); `Date:` headers are in the sender's own time zone.

Regenerate it (byte-identical; stdlib only, no network) with:

    python3 examples/generate_inbox.py

The script re-reads the mbox, checks it and rewrites this file.

## Summary

{chr(10).join(f"- {line}" for line in lines)}

"On time" and "late" use wall-clock time from the arrival of the customer's first
message to the arrival of the first team reply, with a 4 hour deadline (1 hour for
VIPs). Team working hours are Mon-Fri 09:00-18:00 Europe/Berlin time (CEST, CET
from Sun 25 Oct); the snapshot is taken on Wed 28 Oct 2026 17:00 UTC.

## Who is who

- Team: `support@example.test` (shared mailbox) and agents `alice@`, `bob@`,
  `chen@`, `dana@example.test`. Agents Cc the shared mailbox and set
  `Reply-To: support@example.test`. Dana uses Outlook (`RE:`/`FW:` prefixes).
- Escalation targets: `manager@example.test`, `director@example.test`; they only
  receive internal forwards (`Fwd:`/`FW:`, Cc support@), which are not responses.
- Customers: `acme.example`, `globex.example`, `initech.example` (German Outlook,
  `AW:`), `umbrella.example`, `hooli.example`, `vandelay.example` and individuals
  at `mail.example` (one without a display name). Non-ASCII names and subjects
  are RFC 2047 encoded words.
- VIP: `bigcorp.example`.

## VIP threads

| Subject | First message arrived (UTC) | Urgent | First response after |
|---|---|---|---|
{vip_rows}

## Cases worth a test

- First reply with `References` but no `In-Reply-To`:
{listing("references-only")}
- First reply with neither header (`RE: <subject>`, matched by subject only):
{listing("subject-only")}
- Customer answer with neither header (`AW: Re: ...` / `RE: Re: ...`):
{listing("customer-subject-only")}
- Customer chaser without a `Message-ID` (nothing references it):
{listing("no-message-id")}
- Internal forwards to the manager (not responses):
{listing("forward")}
  plus the two VIP forwards in "API down? ..." and "URGENT - reporting module ...".
- Out-of-office replies from the customer, arriving seconds after the team's reply
  (3 `Auto-Submitted: auto-replied` with subject "Out of Office: ...", 3 Exchange
  style with `X-Auto-Response-Suppress: All`, `Return-Path: <>` and "Automatic
  reply: ...", 1 carrying only `X-Autoreply: yes` with subject "Re: ..."):
{listing("ooo:")}
- Bounces (`multipart/report; report-type=delivery-status` from
  `MAILER-DAEMON@mx.example.test`, `Return-Path: <>`) of the team's reply:
{listing("bounce:")}
  (5.1.1 for a mistyped Cc'd colleague, 5.2.2 for the customer's full mailbox).
- Newsletters with `List-Id` and `Precedence: bulk`; alerts from
  `noreply@monitoring.example` with `Auto-Submitted: auto-generated`.
- Never answered (no team reply before the snapshot):
{never_answered}
- Greylisted first message (arrives 17 minutes after its `Date`):
{listing("greylisted")}
- Very long (folded) subject:
{listing("long-subject")}
- Customers Cc'ing a colleague (the team's reply goes to both):
{listing("cc")}
- Bodies with lines starting with "From " are stored as ">From " (mboxo escaping).
- Some messages are `multipart/alternative` (text + HTML); a few carry a small CSV
  or PNG attachment. Non-ASCII bodies are quoted-printable, mostly-CJK ones base64.
"""


def main() -> int:
    rng = random.Random(SEED)
    ids = Ids(rng)
    threads = build_threads(rng, ids)
    mails = [m for t in threads for m in t.mails] + automatic_mail(rng, ids, threads)
    mails.sort(key=lambda m: m.arrival)   # stable: ties keep generation order
    write_mbox(mails, MBOX_PATH)

    problems = verify(MBOX_PATH, mails)
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)

    lines = summary_lines(summarize(threads, mails))
    README_PATH.write_text(readme(threads, lines), encoding="utf-8")
    print(f"wrote {MBOX_PATH.relative_to(HERE.parent)} and {README_PATH.relative_to(HERE.parent)}")
    for line in lines:
        print(f"  {line}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
