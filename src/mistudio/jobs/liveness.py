"""Which process runs a job: a token naming this process (host, pid, start time) and whether a token's process is
still alive — so a job left `running` by a killed process is recognised, and a reused pid is not mistaken for it."""

from __future__ import annotations

import os
import socket
from functools import lru_cache


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3… of `/proc/{pid}/stat` (state, ppid, …; Linux), or None where that is not readable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()  # the name in parentheses may hold spaces


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (field 22), or "" where that is not known."""
    fields = _stat_fields(pid)
    return fields[19] if fields else ""


@lru_cache(maxsize=1)
def _host() -> str:
    return socket.gethostname()


def process_token() -> str:
    """`host:pid:start-time` of this process."""
    pid = os.getpid()
    return f"{_host()}:{pid}:{_start_time(pid)}"


def is_alive(token: str | None) -> bool | None:
    """Whether the process a token names still runs: True/False on this host, None when it ran elsewhere (or the
    token is missing), since only the host that ran it can tell."""
    if not token:
        return None
    host, _, rest = token.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != _host() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    if started and _start_time(pid) not in ("", started):
        return False  # the pid was reused by a newer process
    fields = _stat_fields(pid)
    return not (fields and fields[0] == "Z")  # a zombie has exited; only its parent has not reaped it yet
