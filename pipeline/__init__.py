"""The pipeline's library: data, model, training and evaluation as plain functions (no Luigi)."""
