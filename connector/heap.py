"""The C heap's free pages handed back to the system between big steps (glibc only)."""

from __future__ import annotations

import ctypes


def release_free_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc's malloc_trim; nothing elsewhere).

    Big steps' temporaries leave their pages free but resident in the heap (at 200,000 customers
    156-238 MB after the sync's evaluation, by mallinfo2), and the Python objects made next - the
    plan's actions, the write-back's outcomes - live in Python's own arenas, which never reuse them:
    the first sync's peak then came after the evaluation, on top of that free memory."""
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own symbols: libc's when it is glibc
    except (OSError, AttributeError):
        return
    trim(0)
