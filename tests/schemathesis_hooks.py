"""Checks of ours that schemathesis runs besides its own (loaded through SCHEMATHESIS_HOOKS)."""

import os

import psycopg
import schemathesis

BOOKING_PATH = "/api/patient-booking/book-v2"


def _header(response, name):
    for key, value in response.headers.items():
        if key.lower() == name.lower():
            return value[0] if isinstance(value, list) else value
    return None


@schemathesis.check
def nothing_written_for_a_rejected_booking(ctx, response, case):
    """A booking answered with an error left no patient, appointment or sync job under its request id."""
    if case.path != BOOKING_PATH or response.status_code < 400:
        return None
    if any(name.lower() == "x-request-id" for name in (case.headers or {})):
        # A client-chosen id may be reused by another request (schemathesis does): rows under it cannot be
        # told apart. Requests without one get a fresh id from the server, and those are checked.
        return None
    request_id = _header(response, "X-Request-Id")
    if request_id is None:
        raise AssertionError("an error answer without X-Request-Id")
    with psycopg.connect(os.environ["TEST_DATABASE_URL"]) as connection:
        written = connection.execute(
            "select (select count(*) from appointments where request_id = %(id)s)"
            " + (select count(*) from patients where created_by_request_id = %(id)s)"
            " + (select count(*) from sync_retry_queue where request_id = %(id)s)",
            {"id": request_id},
        ).fetchone()[0]
    if written:
        raise AssertionError(f"request {request_id} was answered {response.status_code} but wrote {written} rows")
    return None
