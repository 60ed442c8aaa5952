"""What the access probes of remote stores share: short timeouts, a DNS lookup that cannot hang, a
cause told in a few words, and the wording of "try again".

The storage clients retry for minutes when the network, a credential or a bucket is missing; a probe
makes one bounded call instead, so a run that cannot work says why in seconds (pipeline/preflight.py
runs the probes, all at once, before any work).
"""

import socket
import threading

from .base import Store, is_transient

CONNECT_SECONDS = 3.0
READ_SECONDS = 3.0
DNS_SECONDS = 2.0

# A store that answered, but with "try again" (429, 5xx, a reset connection): not a usage error. The
# caller retries once inside its time budget; if it persists, exit 3 ("could not check"), like a run.
TRANSIENT = "the store kept failing (try again later): "
RUN_AGAIN = "run again; nothing was decided (exit code 3: could not check)"


def transient_error(exc: BaseException, store: Store) -> bool:
    """A reset or refused connection to a store whose name resolved (DNS is checked first): try again.
    A timeout is not: the caller reports it as "cannot reach"."""
    return (is_transient(exc, (store,)) and "timed out" not in str(exc).lower()
            and "timeout" not in type(exc).__name__.lower())


def in_background(function, *args):
    """(daemon thread, outcome dict): a check that hangs must not keep the process from exiting."""
    outcome = {}

    def target():
        try:
            outcome["value"] = function(*args)
        except Exception as exc:  # noqa: BLE001 - reported as the check's own failure
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name=f"preflight {args[:1]}")
    thread.start()
    return thread, outcome


def unresolved(host: str) -> str | None:
    """None when `host` resolves within DNS_SECONDS, else why not (getaddrinfo itself has no timeout)."""
    thread, outcome = in_background(socket.getaddrinfo, host, None)
    thread.join(DNS_SECONDS)
    if thread.is_alive():
        return f"DNS lookup of {host} did not answer within {DNS_SECONDS:.0f} s"
    error = outcome.get("error")
    if isinstance(error, OSError):
        return f"DNS lookup of {host} failed ({error.strerror or error})"
    if error is not None:
        return f"DNS lookup of {host} failed ({short(error)})"
    return None


def short(exc: BaseException) -> str:
    """The cause in a few words: HTTP clients wrap it in several layers of pool and URL text."""
    text = str(exc)
    waited = f"no answer within {CONNECT_SECONDS:.0f} s (connect) or {READ_SECONDS:.0f} s (read)"
    for needle, said in (("Connection refused", "connection refused"), ("timed out", waited),
                         ("timeout", waited), ("Name or service not known", "DNS lookup failed"),
                         ("Network is unreachable", "network is unreachable")):
        if needle.lower() in text.lower():
            return f"{said} ({type(exc).__name__})"
    return f"{type(exc).__name__}: {(text.splitlines() or [''])[0][:200]}"
