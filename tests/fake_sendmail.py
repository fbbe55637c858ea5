"""A stand-in for sendmail that the `command` transport's tests run as a real program.

    python3 fake_sendmail.py FOLDER [ARGUMENT...]

It reads the mail from standard input and writes it to FOLDER/NNN.eml, with its arguments in FOLDER/NNN.json
(and the names of the environment variables it was given in FOLDER/NNN.env.json), then exits with the status FOLDER/status holds (0 when there is no such file). A status of "sleep" makes it wait
far longer than any test's timeout; "signal" makes it kill itself with SIGTERM. FOLDER/stderr, if present, is
copied to standard error (what a real sendmail says on failure). With a status other than 0 nothing is kept,
as a mail program that refused the mail keeps nothing."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path


def main() -> int:
    folder, arguments = Path(sys.argv[1]), sys.argv[2:]
    data = sys.stdin.buffer.read()
    status_file, stderr_file = folder / "status", folder / "stderr"
    status = status_file.read_text().strip() if status_file.exists() else "0"
    if stderr_file.exists():
        sys.stderr.write(stderr_file.read_text())
        sys.stderr.flush()
    if status == "sleep":
        time.sleep(600)
    if status == "signal":
        os.kill(os.getpid(), signal.SIGTERM)
    if status != "0":
        return int(status)
    number = len(list(folder.glob("*.eml"))) + 1
    (folder / f"{number:03d}.json").write_text(json.dumps(arguments))
    (folder / f"{number:03d}.env.json").write_text(json.dumps(sorted(os.environ)))
    (folder / f"{number:03d}.eml").write_bytes(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
