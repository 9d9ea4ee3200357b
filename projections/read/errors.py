"""One error hierarchy for the read side, mapped to HTTP in one place (`projections/http/app.py`).

Adapters translate library exceptions into these with `raise ... from exc`, so the
API never leaks a Redis or Kafka traceback to a caller.
"""

from __future__ import annotations


class ReadSideError(Exception):
    """Base of every error the read side raises on purpose. `status` is its HTTP code."""

    status = 500
    code = "internal"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.code)
        self.detail = detail or self.code


class Unauthenticated(ReadSideError):
    """No credentials, or credentials that do not verify (unknown, tampered, expired).

    Deliberately one message for every cause, so a caller learns nothing about why."""

    status = 401
    code = "unauthenticated"

    def __init__(self, detail: str = "invalid or missing credentials") -> None:
        super().__init__(detail)


class Forbidden(ReadSideError):
    """Valid credentials that do not cover this resource. Never says whether it exists."""

    status = 403
    code = "forbidden"

    def __init__(self, detail: str = "not allowed") -> None:
        super().__init__(detail)


class NotFound(ReadSideError):
    status = 404
    code = "not_found"


class TooLarge(ReadSideError):
    """A request body beyond the configured limit (refused before it is parsed)."""

    status = 413
    code = "too_large"


class RateLimited(ReadSideError):
    """A request rate is used up (`who`: this key, this customer, this address);
    `retry_after` whole seconds until it is not."""

    status = 429
    code = "rate_limited"

    def __init__(self, retry_after: int, who: str = "this key") -> None:
        super().__init__(f"too many requests for {who}; retry after {retry_after} s")
        self.retry_after = retry_after


class InvalidRequest(ReadSideError):
    status = 422
    code = "invalid_request"


class Unavailable(ReadSideError):
    """A backing store (Redis) or the broker could not answer; the caller may retry."""

    status = 503
    code = "unavailable"


class UnknownPlan(ReadSideError):
    """A well-formed command naming a plan id or plan version the API's catalog does
    not hold (refused before anything is written; retry once it is published)."""

    status = 409
    code = "unknown_plan"


class RetiredPlan(ReadSideError):
    """A well-formed command joining a plan retired for new subscriptions
    (`streambill catalog retire`)."""

    status = 409
    code = "plan_retired"
