"""Start dramatiq worker processes on the project's actors."""
from __future__ import annotations

import os
import sys


def run_dramatiq(processes: int, threads: int) -> int:
    args = [sys.executable, "-m", "dramatiq", "workers.dramatiq_app",
            "--processes", str(processes), "--threads", str(threads)]
    os.execvp(args[0], args)
    return 0  # not reached
