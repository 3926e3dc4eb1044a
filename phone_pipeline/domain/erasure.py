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
DUPLICATE_REQUEST_ID = "duplicate_request_id"
ERASURE_QUARANTINE_REASONS = (
    "missing_request_id",
    "invalid_phone_number",
    "bad_requested_at",
    DUPLICATE_REQUEST_ID,
)


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
    """Request rows (text) joined to their parsed number, with `reason` (NULL = a usable row;
    `resolve_request_ids_sql` then says which request it names).

    `staged` has `source_file`, `source_row`, `phone_number`, `requested_at`, `request_id`;
    `parsed_numbers` has `raw_number` and `e164`.
    """
    return f"""
    WITH parsed AS (
        -- An empty frame of parsed numbers has no string type to give.
        SELECT staged.*, CAST(numbers.e164 AS VARCHAR) AS e164,
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


def resolve_request_ids_sql(classified: str, registered: str) -> str:
    """The rows of `classify_erasure_requests_sql` with `reason` and `detail` once request ids
    are resolved: one request id names one request (one number, one time).

    - An id registered in an earlier run names that request: `registered` has `request_id`,
      `requested_at` and `e164`, the number among this run's rows its register entries name
      (NULL when none does).
    - A new id names its first usable row, by file then row.
    A usable row with the same number (any spelling) and time as its id's request repeats it (the
    same file landed twice, or the request resent): it stays usable and names that one request,
    counted once. A row giving the id another number or time is quarantined as
    `duplicate_request_id`: it is another request, and erasing on a guess cannot be undone; it is
    processed once sent again under an id of its own.
    """
    return f"""
    WITH firsts AS (
        SELECT clean_request_id, e164, requested_at_utc AS at FROM {classified}
        WHERE reason IS NULL
        QUALIFY row_number() OVER (PARTITION BY clean_request_id
                                   ORDER BY source_file, source_row) = 1
    ),
    named AS (
        SELECT rows.*, registered.request_id IS NOT NULL AS was_registered,
               coalesce(registered.e164, CASE WHEN registered.request_id IS NULL
                                              THEN firsts.e164 END) AS request_e164,
               coalesce(registered.requested_at, firsts.at) AS request_at
        FROM {classified} AS rows
        LEFT JOIN {registered} AS registered ON registered.request_id = rows.clean_request_id
        LEFT JOIN firsts ON firsts.clean_request_id = rows.clean_request_id
    )
    SELECT * EXCLUDE (reason, was_registered, request_e164, request_at),
           CASE WHEN reason IS NOT NULL THEN reason
                WHEN e164 IS DISTINCT FROM request_e164 OR requested_at_utc <> request_at
                THEN '{DUPLICATE_REQUEST_ID}'
           END AS reason,
           CASE WHEN reason IS NULL AND (e164 IS DISTINCT FROM request_e164
                                         OR requested_at_utc <> request_at)
                THEN CASE WHEN was_registered
                          THEN 'the id names a request registered earlier with another number or time'
                          ELSE 'an earlier row with this id has another number or time' END
           END AS detail
    FROM named
    """


def consent_change_partitions_sql(old_events: str, new_events: str, known_numbers: str) -> str:
    """The call dates a consent registry change can alter: for every event added or removed
    (purpose `$purpose`, see domain.consent.purpose_values), the dates of calls with that number
    (as caller or callee) at or after the event's time. Dates only: what a sensor needs to re-run
    partitions, nothing personal.

    `old_events`/`new_events` have `e164`, `purpose`, `status`, `recorded_at`; `known_numbers`
    has `call_date`, `e164` and `last_seen` (domain.validation.known_numbers_sql): a day has such
    a call when the number was last seen that day at or after the event.
    """
    columns = "e164, status, recorded_at"
    return f"""
    WITH changed AS (
        (SELECT {columns} FROM {new_events} WHERE purpose = $purpose
         EXCEPT SELECT {columns} FROM {old_events} WHERE purpose = $purpose)
        UNION
        (SELECT {columns} FROM {old_events} WHERE purpose = $purpose
         EXCEPT SELECT {columns} FROM {new_events} WHERE purpose = $purpose)
    ),
    earliest AS (SELECT e164, min(recorded_at) AS since FROM changed GROUP BY e164)
    SELECT DISTINCT known.call_date FROM {known_numbers} AS known
    JOIN earliest ON earliest.e164 = known.e164 AND known.last_seen >= earliest.since
    ORDER BY 1
    """
