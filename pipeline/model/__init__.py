"""The model half: prompts, fine-tuning files and jobs, endpoints, holdout evaluation, the decision report."""
