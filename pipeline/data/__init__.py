"""The data stage: known data sets, download and verification, IDX parsing, extraction, the validation split."""
