"""Process measurements for the scale and soak benchmarks (Linux /proc, no psutil).

RSS comes from /proc/<pid>/status (VmRSS, kB); CPU time from /proc/<pid>/stat
(utime + stime, clock ticks), so the soak harness can measure the monitor it
runs as a child process without measuring itself.
"""

from __future__ import annotations

import os

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int | str = "self") -> int:
    """Resident set size in kB (VmRSS), or -1 if the process is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return -1
    return -1


def cpu_s(pid: int | str = "self") -> float:
    """User + system CPU seconds of the process (threads included), or -1 if gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            raw = fh.read()
    except (FileNotFoundError, ProcessLookupError):
        return -1.0
    # The command name (field 2) may contain spaces: split after its closing paren.
    fields = raw[raw.rindex(")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _TICKS_PER_S


def loadavg() -> str:
    with open("/proc/loadavg", encoding="ascii") as fh:
        return " ".join(fh.read().split()[:3])
