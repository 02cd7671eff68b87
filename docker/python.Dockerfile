# syntax=docker/dockerfile:1
# The Python stacks: one build stage, a serving venv and one small final stage per stack, and the
# fast stack's compiled model; the final stage is named after the stack in the registry
# (src/fiber_endpoints/stacks/__init__.py).
#
#   docker build -f docker/python.Dockerfile --target fastapi -t fiber-endpoints/fastapi .
#
# Adding a Python stack: copy the `venv-fastapi` and `fastapi` stages at the end, and change the
# name, the packages it never imports, and the port (the registry's default port).
# tests/unit/test_containers.py checks them.

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

# ---- each stack's serving venv: the build's, less what that stack never imports ----
# (uv sync removes the packages it is told not to install; test_containers_compose.py checks
# in each image that they are not importable and that the stack still serves.)
# fastapi: Booster.predict (lightgbm, numpy, scipy); no compiled model, so no lleaves/llvmlite.
FROM build AS venv-fastapi
RUN ["uv", "sync", "--locked", "--no-editable", "--no-install-package", "lleaves", "--no-install-package", "llvmlite"]

# asgi-msgspec: the compiled model is a shared object loaded by ctypes (no lleaves, no llvmlite),
# LightGBM's C API library by path without importing the lightgbm package (so none of its
# Python dependencies numpy, scipy and narwhals: v2.py decodes tensors with the array module),
# and no FastAPI.
FROM build AS venv-asgi-msgspec
RUN ["uv", "sync", "--locked", "--no-editable", "--no-install-package", "lleaves", "--no-install-package", "llvmlite", "--no-install-package", "scipy", "--no-install-package", "narwhals", "--no-install-package", "numpy", "--no-install-package", "fastapi", "--no-install-package", "starlette", "--no-install-package", "opentelemetry-instrumentation-fastapi"]

# ---- the fast stack's compiled model: lleaves at build time, for a portable CPU target ----
# `fiber-endpoints compile` compiles the model for x86-64-v2 (not this machine's CPU), links it
# with binutils' ld, checks it against LightGBM's C API (libgomp1) and ships the .so with its certificate,
# named by the model's SHA-256: a container serves it from its first start, and a model mounted
# over /models/model.txt (another hash) never runs it.
FROM build AS compiled
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils libgomp1 \
    && rm -rf /var/lib/apt/lists/*
COPY models/regression/model.txt /models/model.txt
ENV CC=ld \
    FIBER_ENDPOINTS_CACHE=/tmp/compile-cache
RUN ["/opt/venv/bin/fiber-endpoints", "compile", "--model", "/models/model.txt", "--ship", "/opt/compiled"]

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
# The model, overridable by mounting another file here (or setting FIBER_ENDPOINTS_MODEL).
COPY models/regression/model.txt /models/model.txt
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FIBER_ENDPOINTS_MODEL=/models/model.txt \
    FIBER_ENDPOINTS_CACHE=/tmp/fiber-endpoints
USER 10001:10001
# uvicorn stops on SIGTERM: stop accepting, finish in-flight requests, flush spans, exit 0.
STOPSIGNAL SIGTERM

# ---- one stage per stack: its venv, name, port, health check, entrypoint ----
FROM runtime AS fastapi
COPY --from=venv-fastapi /opt/venv /opt/venv
EXPOSE 8000
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import json, urllib.request as u; assert json.load(u.urlopen('http://127.0.0.1:8000/health', timeout=2))['status'] == 'ok'"]
ENTRYPOINT ["fiber-endpoints", "serve", "fastapi", "--host", "0.0.0.0", "--port", "8000"]

FROM runtime AS asgi-msgspec
COPY --from=venv-asgi-msgspec /opt/venv /opt/venv
# The shipped model's compiled code, found by the served model's SHA-256 (read-only is enough).
# Another model has no artefact here and no compiler in this image: it is served by LightGBM's
# C API (/health says which), or compile it with `fiber-endpoints compile --ship DIR` and mount
# DIR here beside it.
COPY --from=compiled /opt/compiled /opt/compiled
ENV FIBER_ENDPOINTS_COMPILED=/opt/compiled
EXPOSE 8002
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import json, urllib.request as u; assert json.load(u.urlopen('http://127.0.0.1:8002/health', timeout=2))['status'] == 'ok'"]
ENTRYPOINT ["fiber-endpoints", "serve", "asgi-msgspec", "--host", "0.0.0.0", "--port", "8002"]
