"""The fixes to the pinned Dagster (dagster_fixes.py) are in place and do what they say, in a real
instance: each test fails on Dagster's own version, and if an upgrade renames what they rely on."""

from __future__ import annotations

import dagster as dg
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext

from phone_pipeline.dagster_fixes import sqlite_engine

POOL = "duckdb"


def _dummy_run(instance: dg.DagsterInstance) -> dg.DagsterRun:
    return instance.create_run_for_job(dg.GraphDefinition("dummy").to_job())


def test_a_run_waiting_for_a_pool_sleeps_until_its_next_claim() -> None:
    """Dagster 1.13.27 said 0 s here, at most: the executor's loop spun while it waited."""
    overrides = {"concurrency": {"pools": {"default_limit": 1}}}
    with dg.instance_for_test(overrides=overrides) as instance:
        instance.event_log_storage.set_concurrency_slots(POOL, 1)
        holder = _dummy_run(instance)
        assert instance.event_log_storage.claim_concurrency_slot(
            POOL, holder.run_id, "a"
        ).is_claimed
        with InstanceConcurrencyContext(instance, _dummy_run(instance)) as context:
            assert not context.claim(POOL, "b")
            assert 0.5 < context.interval_to_next_pending_claim_check() <= 1.0


def test_the_sqlite_event_log_keeps_one_engine_per_file() -> None:
    with dg.instance_for_test() as instance:
        run = _dummy_run(instance)
        before = sqlite_engine.cache_info()
        for index in range(20):
            instance.report_engine_event(f"event {index}", run)
        after = sqlite_engine.cache_info()
        # The run's file and the index: one engine each, made once (Dagster made one per event).
        assert after.misses - before.misses <= 2, (before, after)
        assert (after.hits + after.misses) - (before.hits + before.misses) >= 20, (before, after)
        # Every event was stored and reads back.
        messages = [entry.message for entry in instance.all_logs(run.run_id)]
        assert [f"event {index}" for index in range(20)] == [
            message for message in messages if message.startswith("event ")
        ]
