# syntax=docker/dockerfile:1
# The Python stacks: one build stage, one runtime base, and one small final stage per stack; the
# stage is named after the stack in the registry (src/fiber_endpoints/stacks/__init__.py).
#
#   docker build -f docker/python.Dockerfile --target fastapi -t fiber-endpoints/fastapi .
#
# Adding a Python stack: copy the `fastapi` stage at the end, and change its name and port (the
# registry's default port) in its five lines. tests/unit/test_containers.py checks all of them.

# ---- build: the serving dependencies from uv.lock, then the package, in a venv; uv stays here ----
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1
# uv at the version pyproject.toml's dev extra pins (tests/unit/test_containers.py compares them).
RUN ["pip", "install", "uv==0.13.8"]
WORKDIR /src
COPY pyproject.toml uv.lock ./
# The base (serving) set only, at uv.lock's versions and hashes; --locked fails on a stale lock.
# Without the package first, so this layer is reused while only src/ changes.
RUN ["uv", "sync", "--locked", "--no-install-project"]
COPY src/ src/
RUN ["uv", "sync", "--locked", "--no-editable"]

# ---- runtime: no compiler, no pip cache, no sources; a non-root user and the model ----
FROM python:3.11.14-slim-bookworm AS runtime
# LightGBM's manylinux wheel links OpenMP (libgomp.so.1), which slim images lack. Debian drops a
# point release's old package versions, so the version is not pinned: pin the base by digest.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
# The model, overridable by mounting another file here (or setting FIBER_ENDPOINTS_MODEL).
COPY models/regression/model.txt /models/model.txt
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FIBER_ENDPOINTS_MODEL=/models/model.txt \
    FIBER_ENDPOINTS_CACHE=/tmp/fiber-endpoints
# The cache (lleaves' compiled model) is keyed by the CPU it runs on, so it is made at start in a
# writable place, not at build time on another machine.
USER 10001:10001
# uvicorn stops on SIGTERM: stop accepting, finish in-flight requests, flush spans, exit 0.
STOPSIGNAL SIGTERM

# ---- one stage per stack: name, port, health check, entrypoint ----
FROM runtime AS fastapi
EXPOSE 8000
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import json, urllib.request as u; assert json.load(u.urlopen('http://127.0.0.1:8000/health', timeout=2))['status'] == 'ok'"]
ENTRYPOINT ["fiber-endpoints", "serve", "fastapi", "--host", "0.0.0.0", "--port", "8000"]

FROM runtime AS asgi-msgspec
EXPOSE 8002
# The first start compiles the model with lleaves (20-60 s on one core).
HEALTHCHECK --interval=5s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import json, urllib.request as u; assert json.load(u.urlopen('http://127.0.0.1:8002/health', timeout=2))['status'] == 'ok'"]
ENTRYPOINT ["fiber-endpoints", "serve", "asgi-msgspec", "--host", "0.0.0.0", "--port", "8002"]
