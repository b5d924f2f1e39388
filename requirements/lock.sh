#!/usr/bin/env bash
# Regenerates the lock files from pyproject.toml (make lock). UPGRADE: a package name, "all", or empty.
set -euo pipefail
cd "$(dirname "$0")/.."
uv="${UV:-uv}"
upgrade=()
case "${UPGRADE:-}" in
    "") ;;
    all) upgrade=(--upgrade) ;;
    *) upgrade=(--upgrade-package "$UPGRADE") ;;
esac
compile() { "$uv" pip compile --quiet --generate-hashes --no-header "${upgrade[@]}" "$@"; }

compile pyproject.toml --extra test --extra mlflow --extra slurm --universal --python-version 3.11 -o requirements/dev.txt
# The image installs the CPU-only TensorFlow wheel (same code, no GPU kernels): tensorflow's range
# from pyproject.toml with tensorflow-cpu's name.
python3 -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
print('\n'.join(d.replace('tensorflow>', 'tensorflow-cpu>', 1) for d in deps))" > requirements/.image.in
compile requirements/.image.in --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o requirements/image.txt
# The image's extra stages: jupyter (the jupyter extra) and tracking (the mlflow extra), each on top of image.txt.
for extra in jupyter mlflow; do
    python3 -c "import sys, tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies'][sys.argv[1]]))" \
        "$extra" > "requirements/.$extra.in"
done
compile requirements/.jupyter.in -c requirements/image.txt --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    -o requirements/jupyter.txt
compile requirements/.mlflow.in -c requirements/image.txt --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    -o requirements/tracking.txt
# The tracking server's own environment (Makefile's .venv-mlflow, deploy/mlflow/Dockerfile).
compile requirements/mlflow-server.in --universal --python-version 3.11 -o requirements/mlflow-server.txt
rm requirements/.image.in requirements/.jupyter.in requirements/.mlflow.in
