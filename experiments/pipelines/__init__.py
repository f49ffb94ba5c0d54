"""Multi-stage pipelines (the quickstart, the paper's ablations) built from resumable stages."""
