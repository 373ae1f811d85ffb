# kyc-attach for container work pools (docker, ECS, Kubernetes): the locked dependencies, the code, no dev tools,
# run as a non-root user. Prefect's workers start flow runs in it with their own command, so there is no
# ENTRYPOINT; `docker run IMAGE kyc-attach run ...` runs the CLI.
#
#   docker build -t kyc-attach:0.1.0 .
FROM python:3.11.14-slim-bookworm AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
RUN pip install --no-cache-dir uv==0.13.8
WORKDIR /app
# Dependencies first, from the lock alone: a code change does not reinstall them.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY flows ./flows
COPY transforms ./transforms
COPY connectors ./connectors
COPY sandbox ./sandbox
RUN uv sync --frozen --no-dev --no-editable

FROM python:3.11.14-slim-bookworm
RUN useradd --create-home --uid 10001 kyc
WORKDIR /app
COPY --from=build --chown=10001:10001 /app /app
COPY --chown=10001:10001 deployments ./deployments
COPY --chown=10001:10001 mappings ./mappings
# The work folder (plan rows: personal data) is the container's own scratch, removed with it.
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    KYC_ATTACH_WORK_DIR=/tmp/kyc-attach \
    PREFECT_SERVER_ANALYTICS_ENABLED=false
USER 10001
CMD ["kyc-attach", "--help"]
