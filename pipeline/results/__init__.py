"""The results stage: evaluation, the run report, the runs table, prediction."""
