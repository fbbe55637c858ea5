"""The engine's stages: what one cycle of one mailbox does, one concern per module.

- `state.py`: what the stages share for one mailbox (its store box, policies, people, the thread index, the
  agenda, the escalation index, the first start) and the cycle's report.
- `timing.py`: starting a thread's clock, and keeping (then retrying) a thread its policy cannot time.
- `intake.py`: parse, classify, thread, start the clock, acknowledge; quarantine, and reading it again.
- `deadlines.py`: evaluate the clocks that are due: warnings, breaches, the escalation ladder.
- `retention.py`: move quiet threads to the archive.

No stage knows the order of the steps, and none writes the store to disk: `cycle.py` lists the steps and owns
the transaction points. A stage reads and writes only the shared state it is given and its own."""
