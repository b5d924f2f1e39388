"""MLflow as an optional layer: one MLflow run per evaluated artifact, and the model registry's champion.

No Luigi here (tasks/tracking.py holds the tasks). ``mlflow`` is imported only by Track and
Promote when they run, from the ``mlflow`` extra (``pip install -e '.[mlflow]'``).
"""
