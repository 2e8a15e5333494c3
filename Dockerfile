# One image for every role: `hdsapp serve` (API + PWA), `hdsapp worker`, `hdsapp beat`,
# `hdsapp migrate`. Multi-stage: the final stage has no compiler and runs as a non-root user.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY hdsapp ./hdsapp
COPY audit ./audit
COPY fhir ./fhir
RUN python -m venv /opt/hdsapp \
 && /opt/hdsapp/bin/pip install --upgrade pip \
 && /opt/hdsapp/bin/pip install .

FROM ${PYTHON_IMAGE} AS runtime
# An HSM's PKCS#11 module is mounted by the operator (see SECURITY.md), not baked in.
RUN groupadd --system --gid 10001 hdsapp \
 && useradd --system --uid 10001 --gid hdsapp --home-dir /var/lib/hdsapp --create-home hdsapp
COPY --from=build /opt/hdsapp /opt/hdsapp
ENV PATH=/opt/hdsapp/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HDS_DATA_DIR=/var/lib/hdsapp \
    HDS_HOST=0.0.0.0 \
    HDS_PORT=8000
USER 10001:10001
WORKDIR /var/lib/hdsapp
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["hdsapp"]
CMD ["serve"]
