"""mailesc: first-response clocks and escalations for a support mailbox."""

__version__ = "0.1.0"
