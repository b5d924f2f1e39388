# The pipeline as an image: `docker build -t lenet-luigi .` then
# `docker run --rm -v "$PWD/outputs:/app/outputs" lenet-luigi`.
FROM python:3.11.11-slim-bookworm

# TF_CPP_MIN_LOG_LEVEL stays unset: the tasks then filter TensorFlow's C++ start-up lines themselves.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    LENET_KERNEL_CACHE=/app/kernels

# g++ builds the fused training ops (pipeline/native.py); without it training uses stock ops.
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++=4:12.2.0-3 \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 pipeline
WORKDIR /app

COPY pyproject.toml README.md luigi.cfg ./
COPY pipeline/ pipeline/
COPY tasks/ tasks/
COPY scripts/ scripts/
RUN pip install --no-cache-dir . \
    && mkdir -p outputs kernels \
    && chown pipeline:pipeline outputs kernels

USER 1000:1000
# Built here for the building host's CPU; a host with other CPU features rebuilds it on first use.
RUN python -m pipeline.native
VOLUME ["/app/outputs"]
EXPOSE 8082
CMD ["luigi", "--module", "tasks", "Evaluate", "--local-scheduler"]
