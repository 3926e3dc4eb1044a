"""Erasure (GDPR Art. 17): requests, the register of erased subjects, and matching numbers to it.

The register keeps keyed pseudonyms of the erased numbers, one per request and configured key
version, never the numbers: it is what the pipeline applies at every run, so that a re-landed or
re-materialised file cannot bring an erased subject back. Matching a number to the register means
pseudonymising it under a version the register holds and looking the pseudonym up.

What erasure does to a call (the rule a reviewer audits):
- the subject is the caller: the call's rows are deleted from the restricted zone and its
  pseudonymised row from analytics; the raw row is counted as excluded with reason
  `erased_subject`, so that every input row stays accounted for;
- the subject is the callee: the call stays (it is the caller's data), but every trace of the
  callee goes, as for a callee who never consented and more: the callee's number, country, number
  type and time zones become NULL, and so does the callee pseudonym in analytics.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from phone_pipeline.domain.pseudonyms import Pseudonymizer
from phone_pipeline.domain.timestamps import clean_text_sql, started_at_utc_sql

ERASED_SUBJECT = "erased_subject"  # exclusion reason of a call whose caller was erased

ERASURE_REQUIRED_COLUMNS: tuple[str, ...] = ("phone_number", "requested_at", "request_id")
ERASURE_QUARANTINE_REASONS = ("missing_request_id", "invalid_phone_number", "bad_requested_at")


@dataclass(frozen=True)
class RegisterEntry:
    request_id: str
    key_version: int
    pseudonym: str


def register_entries(
    requests: Mapping[str, str], pseudonymizers: Mapping[int, Pseudonymizer]
) -> list[RegisterEntry]:
    """One entry per request (id -> E.164) and configured key version."""
    return [
        RegisterEntry(request_id, version, pseudonymizer.pseudonym(e164))
        for request_id, e164 in sorted(requests.items())
        for version, pseudonymizer in sorted(pseudonymizers.items())
    ]


class RegisterKeyError(ValueError):
    """The register holds pseudonyms only under key versions that are not configured."""


def erased_numbers(
    numbers: Iterable[str],
    register: Mapping[int, set[str]],
    pseudonymizers: Mapping[int, Pseudonymizer],
) -> set[str]:
    """The numbers (E.164) whose pseudonym, under any version both configured and in the
    register, is registered as erased.

    Raises RegisterKeyError when the register is not empty but none of its versions has a key:
    applying nothing silently would let erased subjects back in.
    """
    usable = sorted(set(register) & set(pseudonymizers))
    if not usable:
        if any(register.values()):
            raise RegisterKeyError(
                "the erasure register holds pseudonyms under key version(s) "
                f"{sorted(register)} but only {sorted(pseudonymizers)} are configured: keep a "
                "key of a registered version configured so that erasures can still be applied"
            )
        return set()
    distinct = set(numbers)
    return {
        number
        for number in distinct
        if any(pseudonymizers[version].pseudonym(number) in register[version] for version in usable)
    }


def classify_erasure_requests_sql(staged: str, parsed_numbers: str) -> str:
    """Request rows (text) joined to their parsed number, with `reason` (NULL = usable request).

    `staged` has `source_file`, `source_row`, `phone_number`, `requested_at`, `request_id`;
    `parsed_numbers` has `raw_number` and `e164`. A request id seen twice keeps its first row (by
    file, then row); later rows with the same id are the same request again, not new ones.
    """
    return f"""
    WITH parsed AS (
        SELECT staged.*, numbers.e164,
               {clean_text_sql("staged.request_id")} AS clean_request_id,
               {started_at_utc_sql("staged.requested_at")} AS requested_at_utc
        FROM {staged} AS staged
        LEFT JOIN {parsed_numbers} AS numbers ON numbers.raw_number = staged.phone_number
    )
    SELECT *,
           CASE WHEN clean_request_id IS NULL THEN 'missing_request_id'
                WHEN e164 IS NULL THEN 'invalid_phone_number'
                WHEN requested_at_utc IS NULL THEN 'bad_requested_at'
           END AS reason
    FROM parsed
    """


def consent_change_partitions_sql(
    old_events: str, new_events: str, known_numbers: str, purpose: str = "analytics"
) -> str:
    """The call dates a consent registry change can alter: for every event added or removed
    (purpose `purpose`), the dates of calls with that number (as caller or callee) at or after the
    event's time. Dates only: what a sensor needs to re-run partitions, nothing personal.

    `old_events`/`new_events` have `e164`, `purpose`, `status`, `recorded_at`; `known_numbers`
    has `call_date`, `e164` and `last_seen` (domain.validation.known_numbers_sql): a day has such
    a call when the number was last seen that day at or after the event.
    """
    if not purpose.isidentifier():
        raise ValueError(f"purpose must be a plain word, got {purpose!r}")
    columns = "e164, status, recorded_at"
    return f"""
    WITH changed AS (
        (SELECT {columns} FROM {new_events} WHERE purpose = '{purpose}'
         EXCEPT SELECT {columns} FROM {old_events} WHERE purpose = '{purpose}')
        UNION
        (SELECT {columns} FROM {old_events} WHERE purpose = '{purpose}'
         EXCEPT SELECT {columns} FROM {new_events} WHERE purpose = '{purpose}')
    ),
    earliest AS (SELECT e164, min(recorded_at) AS since FROM changed GROUP BY e164)
    SELECT DISTINCT known.call_date FROM {known_numbers} AS known
    JOIN earliest ON earliest.e164 = known.e164 AND known.last_seen >= earliest.since
    ORDER BY 1
    """
