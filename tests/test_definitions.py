"""The code location: every asset guarded by checks, pools set, the nightly schedule, the landing sensor."""
from dagster import RunRequest, SkipReason, build_sensor_context

from assets.definitions import defs


def test_graph_has_every_stage_with_checks_and_a_pool():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {"raw_tickets", "masked_tickets", "deduplicated_tickets", "labelled_tickets", "dataset_splits",
                    "finetune_files", "finetune_job", "holdout_evaluation", "decision_report"}
    checked = {c.asset_key.to_user_string() for c in graph.asset_check_keys}
    assert {"raw_tickets", "masked_tickets", "deduplicated_tickets", "labelled_tickets", "dataset_splits",
            "finetune_files"} <= checked
    for key in graph.get_all_asset_keys():
        assert graph.get(key).pools == {"tunegate_catalog"}, key


def test_nightly_schedule_refreshes_the_dataset():
    schedule = defs.resolve_schedule_def("nightly_dataset_refresh")
    assert schedule.cron_schedule == "0 2 * * *" and schedule.job_name == "refresh_dataset"


def test_landing_sensor_fires_on_new_files_only(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEGATE_WAREHOUSE", str(tmp_path))
    monkeypatch.delenv("TUNEGATE_CONFIG", raising=False)
    sensor = defs.resolve_sensor_def("landing_files_sensor")
    ctx = build_sensor_context(cursor=None)
    assert isinstance(sensor.evaluate_tick(ctx).skip_message, str)  # no landing folder yet
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "a.csv").write_text("ticket_id,customer_text,operator_label\n1,where is my card,card_arrival\n")
    first = sensor.evaluate_tick(build_sensor_context(cursor=None))
    assert len(first.run_requests) == 1
    again = sensor.evaluate_tick(build_sensor_context(cursor=first.cursor))
    assert not again.run_requests
    (tmp_path / "landing" / "b.jsonl").write_text('{"ticket_id": "2", "customer_text": "card lost", "operator_label": "lost_or_stolen_card"}\n')
    third = sensor.evaluate_tick(build_sensor_context(cursor=first.cursor))
    assert len(third.run_requests) == 1 and third.cursor != first.cursor
