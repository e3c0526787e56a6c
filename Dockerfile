# The ocop-trace application image (workers, sink, web). Kafka and PostgreSQL are separate services
# (docker-compose.yml); OCOP_BOOTSTRAP points at the cluster, so no Java and no Kafka jars are needed here.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OCOP_DATA_DIR=/data

# fonts for Vietnamese labels (diacritics); nothing else from apt
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md* ./
COPY ocop_trace ./ocop_trace
COPY schemas ./schemas
COPY producers ./producers
COPY streams ./streams
COPY consumers ./consumers
COPY qr ./qr
RUN pip install . \
 && useradd --create-home --uid 10001 ocop \
 && mkdir -p /data && chown ocop:ocop /data

USER ocop
VOLUME ["/data"]
EXPOSE 8000 6066
CMD ["ocop-trace", "--help"]
