"""Where else a ladder level is told, beside its mail: notifier kinds a level's `notify` names as "KIND:NAME".

One kind today, `webhook` (`[webhook.NAME]` in the config, notifiers/webhook.py): a JSON post to a chat's
incoming webhook (Slack, Mattermost, Microsoft Teams). A post is queued like a mail (a QueuedMail of kind
'webhook' in its breach's `notifications`, written ahead with the level's mail) and sent by the same outbox
loop, through a Notifier: the real one posts, a dry run says what it would post, a replay posts nothing.

A new kind is one module here with its config reading, its Notifier and its tests, plus its name in
policies.NOTIFIER_KINDS."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mailesc.model import WebhookPost


class Notifier(Protocol):
    def post(self, post: WebhookPost) -> Exception | None:
        """Deliver one post: None when the receiver took it, else the TemporaryTransportError (retried with
        backoff) or PermanentTransportError (failed for good) that stopped it. Never raises for a refusal."""


class ReplayNotifier:
    """A replay records the posts its levels would make and sends none (as its mails go to a Maildir only)."""

    def post(self, post: WebhookPost) -> Exception | None:
        return None
