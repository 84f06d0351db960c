"""Every job of the code location: the dataset refresh, the model half and the whole chain."""
import dagster as dg

DATA_ASSETS = dg.AssetSelection.groups("data")
MODEL_ASSETS = dg.AssetSelection.groups("model")

refresh_dataset_job = dg.define_asset_job(
    "refresh_dataset", selection=DATA_ASSETS,
    description="Landing files -> a new (or the same) dataset version, with every check.")

model_half_job = dg.define_asset_job(
    "model_half", selection=MODEL_ASSETS,
    description="Fine-tuning files and jobs, holdout evaluation and the decision report on the latest dataset version.")

full_pipeline_job = dg.define_asset_job(
    "full_pipeline", selection=dg.AssetSelection.all(),
    description="The whole chain: data, fine-tuning, holdout evaluation, decision report.")

ALL_JOBS = [refresh_dataset_job, model_half_job, full_pipeline_job]
