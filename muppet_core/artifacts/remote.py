"""Calls to a remote store backend: bounded retries of transient failures, and the one-line errors they
end in (which name the URI and the cause, never a credential)."""

from __future__ import annotations

import errno
import logging
import os
import re
import time
from collections.abc import Callable
from typing import TypeVar

from muppet_core.errors import MuppetError, StoreError, first_line

log = logging.getLogger(__name__)
T = TypeVar("T")

CREDENTIAL_HINT = "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, AWS_SESSION_TOKEN) and AWS_ENDPOINT_URL"
SERVER_HINT = ("the server's log says why; most often it is out of space (SeaweedFS logs 'No writable volumes' once its "
               "-volume.max volumes of -master.volumeSizeLimitMB are full: docs/operations.md, 'The S3 server')")
SECRET_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "PREFECT_API_KEY", "PREFECT_API_AUTH_STRING",
              "PREFECT_SERVER_API_AUTH_STRING")
_PERMANENT = (PermissionError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, MuppetError)
_TRANSIENT_ERRNO = {errno.EIO, errno.EBUSY, errno.ETIMEDOUT, errno.ECONNRESET, errno.ECONNREFUSED, errno.EPIPE, getattr(errno, "EREMOTEIO", errno.EIO)}
_NETWORK_MODULES = ("botocore", "aiobotocore", "aiohttp", "urllib3")


def redact(text: str) -> str:
    """``text`` without the values of credential variables or a URI's ``user:password@`` part."""
    for name in SECRET_ENV:
        value = os.environ.get(name)
        if value and len(value) >= 8:  # shorter values are words (a bucket named like its key), not secrets
            text = text.replace(value, "***")
    return re.sub(r"(\w+://)[^/@\s]+@", r"\1***@", text)


def cause(exc: BaseException) -> str:
    """The first line of an exception, without secrets."""
    return redact(first_line(exc))


def missing_credentials(exc: BaseException) -> bool:
    """Whether the S3 client found no credentials, or only part of them (botocore's
    ``NoCredentialsError``, ``PartialCredentialsError``): asking again cannot help."""
    return type(exc).__module__.startswith("botocore") and type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError")


def transient(exc: BaseException) -> bool:
    """Whether trying again may help: a dropped connection, a timeout, a server error or
    throttling; not a refusal, missing credentials, a missing object or a bad request."""
    if isinstance(exc, _PERMANENT) or missing_credentials(exc):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, OSError):
        return exc.errno in _TRANSIENT_ERRNO or exc.errno is None
    return type(exc).__module__.split(".")[0] in _NETWORK_MODULES


def server_failure(exc: BaseException) -> str | None:
    """What the S3 server answered when it failed the request behind ``exc`` (an HTTP 5xx: its own
    fault, not the request's), as ``HTTP 500 InternalError: <its message>``; None for any other error."""
    seen: BaseException | None = exc
    for _ in range(8):  # botocore's error sits one or two links down the chain
        if seen is None:
            break
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if isinstance(status, int) and status >= 500:
                error = response.get("Error", {})
                said = " ".join(filter(None, [f"HTTP {status}", error.get("Code")]))
                return redact(f"{said}: {error['Message']}" if error.get("Message") else said)
        seen = seen.__cause__ or seen.__context__
    return None


def denied(root: str, exc: BaseException) -> StoreError:
    """The error for refused credentials."""
    return StoreError(f"access to the artifact store {redact(root)} was denied ({cause(exc)}): {CREDENTIAL_HINT}")


def with_retries(call: Callable[[], T], what: str, uri: str, root: str, attempts: int, backoff_s: float) -> T:
    """``call()``, tried up to ``attempts`` times while it fails transiently, waiting ``backoff_s``,
    then twice that, and so on.

    Raises:
        StoreError: access was denied (or there are no credentials), or the last attempt failed transiently.
        FileNotFoundError: (and other permanent errors) as raised.
    """
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except PermissionError as exc:
            raise denied(root, exc) from exc
        except Exception as exc:
            if missing_credentials(exc):
                raise denied(root, exc) from exc
            if not transient(exc):
                raise
            if attempt == attempts:
                failed = server_failure(exc)
                why = f"the S3 server failed ({failed}): {SERVER_HINT}" if failed else cause(exc)
                raise StoreError(f"could not {what} {redact(uri)} after {attempts} attempts: {why}") from exc
            delay = backoff_s * 2 ** (attempt - 1)
            log.warning("could not %s %s (%s); attempt %d of %d in %.1fs", what, redact(uri), cause(exc), attempt + 1, attempts, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")
