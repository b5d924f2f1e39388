# The pipeline as an image: `docker build -t lenet-luigi .` then
# `docker run --rm -v "$PWD/outputs:/app/outputs" lenet-luigi`.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PIP_NO_CACHE_DIR=1

RUN useradd --create-home --uid 1000 pipeline
WORKDIR /app

COPY pyproject.toml README.md luigi.cfg ./
COPY pipeline/ pipeline/
COPY tasks/ tasks/
COPY scripts/ scripts/
RUN pip install --no-cache-dir . \
    && mkdir -p outputs \
    && chown pipeline:pipeline outputs

USER 1000:1000
VOLUME ["/app/outputs"]
EXPOSE 8082
CMD ["luigi", "--module", "tasks", "Evaluate", "--local-scheduler"]
