# The pipeline as an image: `docker build -t lenet-luigi .` then
# `docker run --rm -v "$PWD/outputs:/app/outputs" lenet-luigi`.
# Stages: `builder` installs the Python environment and compiles the fused ops with g++; `app`
# carries the environment and the built ops but no compiler; `jupyter` adds JupyterLab to it
# (docker-compose.yml's jupyter service); `tracking` adds MLflow's client, for Track and Promote
# (docker-compose.yml's luigid and workers); `runtime`, the last and so the default, is `app` itself.
FROM python:3.11.11-slim-bookworm AS base

# TF_CPP_MIN_LOG_LEVEL stays unset: the tasks then filter TensorFlow's C++ start-up lines themselves.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH \
    LENET_KERNEL_CACHE=/app/kernels
RUN useradd --create-home --uid 1000 pipeline
WORKDIR /app


FROM base AS builder
# g++ builds the fused training ops (pipeline/training/native.py); the runtime stage gets the result only.
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++=4:12.2.0-3 \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY requirements/image.txt requirements/
# The locked environment (requirements/README.md): exact versions and hashes, with the CPU-only
# TensorFlow wheel, the same code as `tensorflow` without the GPU kernels.
RUN python -m venv /opt/venv \
    && pip install --no-cache-dir --require-hashes -r requirements/image.txt
COPY pipeline/ pipeline/
COPY tasks/ tasks/
# Then what only building needs goes: TensorFlow's C++ headers (287 MB) and the static symbol
# tables of TensorFlow's own libraries (about 250 MB; strip keeps the dynamic symbols that loading
# and the ops need). Other packages' libraries are left alone: auditwheel-patched ones, such as
# numpy's OpenBLAS, do not survive strip.
RUN pip install --no-cache-dir --no-deps . \
    && python -m pipeline.training.native \
    && tensorflow_dir="$(python -c 'import os, tensorflow as tf; print(os.path.dirname(tf.__file__))')" \
    && rm -rf "$tensorflow_dir/include" \
    && find "$tensorflow_dir" -name '*.so*' -type f -exec strip --strip-unneeded {} + \
    && python -c "import tensorflow as tf; from pipeline.training import native; native.ops(); print(tf.__version__)"


FROM base AS app
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder --chown=1000:1000 /app/kernels /app/kernels
COPY luigi.cfg ./
COPY scripts/ scripts/
RUN mkdir -p outputs/luigid && chown 1000:1000 outputs outputs/luigid
USER 1000:1000
VOLUME ["/app/outputs"]
EXPOSE 8082
CMD ["luigi", "--module", "tasks", "Evaluate", "--local-scheduler"]


FROM app AS jupyter
USER 0:0
COPY requirements/jupyter.txt /tmp/jupyter.txt
RUN pip install --no-cache-dir --require-hashes -r /tmp/jupyter.txt && rm /tmp/jupyter.txt
COPY --chown=1000:1000 notebooks/ notebooks/
USER 1000:1000
EXPOSE 8888
CMD ["jupyter", "lab", "--ip", "0.0.0.0", "--port", "8888", "--no-browser", "--notebook-dir", "/app"]


FROM app AS tracking
# The mlflow extra (mlflow-skinny, pandas: 186 MB), kept out of the default image.
USER 0:0
COPY requirements/tracking.txt /tmp/tracking.txt
RUN pip install --no-cache-dir --require-hashes -r /tmp/tracking.txt && rm /tmp/tracking.txt
USER 1000:1000


FROM app AS runtime
