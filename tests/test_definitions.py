"""The code location: every asset versioned, owned and guarded by checks; resources, jobs, schedule and sensors."""
import json
from pathlib import Path

import dagster as dg
import pytest
import yaml

from assets.definitions import defs
from assets.io_manager import VersionRefIOManager
from assets.resources import TunegateConfigResource
from pipeline.code_version import code_version

DATA = {"raw_tickets", "masked_tickets", "deduplicated_tickets", "labelled_tickets", "dataset_splits"}
MODEL = {"finetune_files", "finetune_job", "holdout_evaluation", "decision_report"}


def test_graph_has_every_stage_with_checks_a_pool_kinds_owners_and_a_code_version():
    graph = defs.resolve_asset_graph()
    nodes = {k.to_user_string(): graph.get(k) for k in graph.get_all_asset_keys()}
    assert set(nodes) == DATA | MODEL
    checked = {c.asset_key.to_user_string() for c in graph.asset_check_keys}
    assert checked == DATA | MODEL  # the model half is guarded too
    for name, node in nodes.items():
        assert node.pools == {"tunegate_catalog"}, name
        assert node.code_version == code_version(name), name  # the hash of the stage's source
        assert node.owners == (["team:data-engineering"] if name in DATA else ["team:ml-engineering"]), name
        assert node.tags["layer"] == ("data" if name in DATA else "model"), name
    assert {"presidio", "parquet"} <= nodes["masked_tickets"].kinds
    assert "duckdb" in nodes["dataset_splits"].kinds and "openai" in nodes["holdout_evaluation"].kinds
    assert nodes["raw_tickets"].tags["pii"] == "raw" and nodes["dataset_splits"].tags["pii"] == "masked"
    assert isinstance(defs.resources["io_manager"], VersionRefIOManager)
    assert len({n.code_version for n in nodes.values()}) == len(nodes)


def test_a_code_version_moves_with_its_stage_source_only(tmp_path, monkeypatch):
    import pipeline.code_version as cv

    files = {m: tmp_path / f"{m}.py" for m in ("a", "b", "common")}
    for m, f in files.items():
        f.write_text(f"# {m}\n")
    monkeypatch.setattr(cv, "COMMON", ("common",))
    monkeypatch.setattr(cv, "STAGE_SOURCES", {"one": ("a",), "two": ("b",)})
    monkeypatch.setattr(cv, "_files", lambda m: [(f"{m}.py", files[m])])

    def versions():
        cv.code_version.cache_clear()
        return cv.code_version("one"), cv.code_version("two")

    one, two = versions()
    files["a"].write_text("# a, edited\n")
    assert versions() == (versions()[0], two) and versions()[0] != one
    files["common"].write_text("# common, edited\n")
    assert all(x != y for x, y in zip(versions(), (one, two)))
    cv.code_version.cache_clear()


def test_model_checks_and_jobs_in_one_place():
    checks = {c.name for c in defs.resolve_asset_graph().asset_check_keys}
    assert {"evaluation_complete", "evaluation_no_candidate_failed", "recommendation_significant",
            "finetune_jobs_succeeded", "finetune_files_valid"} <= checks
    jobs = {j.name for j in defs.resolve_all_job_defs()}
    assert {"refresh_dataset", "model_half", "full_pipeline"} <= jobs
    assert {k.to_user_string() for k in defs.resolve_job_def("model_half").asset_layer.executable_asset_keys} == MODEL


def test_nightly_schedule_refreshes_the_dataset():
    schedule = defs.resolve_schedule_def("nightly_dataset_refresh")
    assert schedule.cron_schedule == "0 2 * * *" and schedule.job_name == "refresh_dataset"


def test_config_is_read_once_per_run(tmp_path):
    """A config edited while a run is going does not change that run; the next run sees the edit."""
    path = tmp_path / "tunegate.yaml"
    path.write_text(yaml.safe_dump({"project": "first", "warehouse": str(tmp_path / "wh")}))
    seen = []

    @dg.asset
    def edits_config(tunegate: TunegateConfigResource) -> int:
        seen.append(tunegate.load().project)
        path.write_text(yaml.safe_dump({"project": "second", "warehouse": str(tmp_path / "wh")}))
        return 1

    @dg.asset(deps=[edits_config])
    def reads_config(tunegate: TunegateConfigResource) -> int:
        seen.append(tunegate.load().project)
        return 1

    resources = {"tunegate": TunegateConfigResource(config_path=str(path))}
    assert dg.materialize([edits_config, reads_config], resources=resources).success
    assert seen == ["first", "first"]
    assert dg.materialize([reads_config], resources=resources, selection=[reads_config]).success
    assert seen[-1] == "second"


def test_version_references_are_json_and_path_metadata_is_the_data_folder(tmp_path):
    """The IO manager stores the small reference as JSON and leaves `path` pointing at the version folder."""
    folder = tmp_path / "datasets" / "thing" / "abc123"
    folder.mkdir(parents=True)

    @dg.asset
    def thing() -> dg.Output:
        ref = {"artifact": "thing", "version": "abc123", "path": str(folder), "rows": 3}
        return dg.Output(ref, metadata={"path": dg.MetadataValue.path(str(folder))},
                         data_version=dg.DataVersion("abc123"))

    @dg.asset
    def after(thing: dict) -> int:
        return thing["rows"]

    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        res = dg.materialize([thing, after], instance=instance, resources={"io_manager": VersionRefIOManager()})
        assert res.success and res.output_for_node("after") == 3
        mat = res.asset_materializations_for_node("thing")[0]
        assert mat.metadata["path"].value == str(folder)
        stored = list((tmp_path / "home").rglob("refs/thing.json"))
        assert len(stored) == 1 and json.loads(stored[0].read_text())["version"] == "abc123"
        latest = instance.get_latest_materialization_event(dg.AssetKey("thing")).asset_materialization
        assert latest.tags["dagster/data_version"] == "abc123"


def test_landing_sensor_fires_on_new_files_only(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEGATE_WAREHOUSE", str(tmp_path))
    monkeypatch.delenv("TUNEGATE_CONFIG", raising=False)
    sensor = defs.resolve_sensor_def("landing_files_sensor")
    res = {"tunegate": TunegateConfigResource()}
    ctx = dg.build_sensor_context(cursor=None, resources=res)
    assert isinstance(sensor.evaluate_tick(ctx).skip_message, str)  # no landing folder yet
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "a.csv").write_text("ticket_id,customer_text,operator_label\n1,where is my card,card_arrival\n")
    first = sensor.evaluate_tick(dg.build_sensor_context(cursor=None, resources=res))
    assert len(first.run_requests) == 1
    again = sensor.evaluate_tick(dg.build_sensor_context(cursor=first.cursor, resources=res))
    assert not again.run_requests
    (tmp_path / "landing" / "b.jsonl").write_text('{"ticket_id": "2", "customer_text": "card lost", "operator_label": "lost_or_stolen_card"}\n')
    third = sensor.evaluate_tick(dg.build_sensor_context(cursor=first.cursor, resources=res))
    assert len(third.run_requests) == 1 and third.cursor != first.cursor


def test_finetune_sensor_waits_for_a_catalog(tmp_path, monkeypatch):
    from assets.resources import CatalogResource, EndpointResource

    monkeypatch.setenv("TUNEGATE_WAREHOUSE", str(tmp_path))
    monkeypatch.delenv("TUNEGATE_CONFIG", raising=False)
    cfg = TunegateConfigResource()
    sensor = defs.resolve_sensor_def("finetune_job_sensor")
    with dg.build_sensor_context(resources={"catalog": CatalogResource(config=cfg),
                                            "endpoint": EndpointResource(config=cfg)}) as ctx:
        result = sensor.evaluate_tick(ctx)
    assert not result.run_requests and result.skip_message == "no catalog yet"
    assert not (tmp_path / "catalog.duckdb").exists()  # looking did not create one


def test_report_preview_inlines_its_charts(tmp_path):
    """The UI cannot fetch files next to the report, so the preview carries the images as data URIs."""
    import base64

    from assets.metadata import inline_images

    (tmp_path / "plots").mkdir()
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
    (tmp_path / "plots" / "cost.png").write_bytes(png)
    (tmp_path.parent / "secret.png").write_bytes(png)
    md = "# Report\n![monthly cost](plots/cost.png)\n![gone](plots/missing.png)\n![out](../secret.png)\n"
    out = inline_images(md, tmp_path)
    assert f"![monthly cost](data:image/png;base64,{base64.b64encode(png).decode()})" in out
    assert "_(gone: plots/missing.png not found)_" in out and "_(out: ../secret.png not found)_" in out
    over = inline_images(md, tmp_path, budget=10)  # past the budget the preview names the file instead
    assert "data:" not in over and str(tmp_path / "plots" / "cost.png") in over


def _materialization(result, name):
    mats = result.asset_materializations_for_node(name)
    assert mats, f"{name} was not materialized"
    return mats[-1]


@pytest.mark.slow
def test_data_assets_link_their_parquet_version_and_report_numbers(data_run):
    """In the UI: `path` opens the Parquet version folder, shares are rounded numbers, the data version is the hash."""
    cfg, result = data_run["cfg"], data_run["result"]
    for name in ("raw_tickets", "masked_tickets", "deduplicated_tickets", "labelled_tickets", "dataset_splits"):
        mat = _materialization(result, name)
        folder = mat.metadata["path"].value
        assert folder.startswith(str(cfg.warehouse_path)) and folder.endswith(mat.metadata["version"].value), name
        assert ".dagster" not in folder and list(Path(folder).glob("*.parquet")), name
        assert mat.tags["dagster/data_version"] == mat.metadata["version"].value, name
    numbers = {"raw_tickets": "quarantine_share", "masked_tickets": "pii_share",
               "dataset_splits": "cross_split_near_duplicates"}
    for name, key in numbers.items():
        value = _materialization(result, name).metadata[key].value
        assert isinstance(value, (int, float)) and value == round(value, 4), (name, key, value)
    assert 0.1 < _materialization(result, "masked_tickets").metadata["pii_share"].value < 0.3
    assert _materialization(result, "dataset_splits").metadata["cross_split_near_duplicates"].value == 0


@pytest.mark.slow
def test_model_assets_plot_per_candidate_and_pass_their_checks(model_run):
    result = model_run["first"]
    checks = {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
              for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    for name in ("finetune_files_valid", "finetune_jobs_succeeded", "evaluation_complete",
                 "evaluation_no_candidate_failed", "recommendation_significant"):
        assert checks.get(name) is True, (name, checks.get(name))
    evaluation = _materialization(result, "holdout_evaluation").metadata
    accuracy = {k.split("/", 1)[1]: v.value for k, v in evaluation.items() if k.startswith("accuracy/")}
    assert {"tg-small/zero_shot", "tg-small/fine_tuned", "tg-large/few_shot"} <= set(accuracy)
    assert all(isinstance(v, float) and 0 < v <= 1 and v == round(v, 4) for v in accuracy.values())
    assert all(evaluation[f"price_per_1000/{c}"].value == round(evaluation[f"price_per_1000/{c}"].value, 4)
               for c in accuracy)
    report = _materialization(result, "decision_report").metadata
    assert report["report"].value.count("data:image/png;base64,") >= 1 and "](plots/" not in report["report"].value
    assert report["report_html"].value.endswith("report.html") and Path(report["report_html"].value).exists()
    assert all(isinstance(v.value, float) for k, v in report.items() if k.startswith("monthly_cost/"))
