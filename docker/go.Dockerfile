# syntax=docker/dockerfile:1
# The Go stack: a static binary (CGO_ENABLED=0) on distroless, which has no shell, curl or wget,
# so the health check is a second static binary (docker/healthcheck, standard library only).
#
#   docker build -f docker/go.Dockerfile --target fiber -t fiber-endpoints/fiber .

# ---- build: the Go toolchain stays here ----
FROM golang:1.26.8-bookworm AS build
ENV CGO_ENABLED=0 \
    GOFLAGS=-mod=readonly \
    GOTOOLCHAIN=local
WORKDIR /src/docker/healthcheck
COPY docker/healthcheck/ ./
RUN ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", "/out/healthcheck", "."]
WORKDIR /src/fiber
COPY fiber/go.mod fiber/go.sum ./
RUN ["go", "mod", "download"]
COPY fiber/ ./
# The one build command: fiber_go.BUILD_COMMAND, also run by `make` (the tests compare them).
RUN ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", "bin/fiber-endpoint", "."]

# ---- runtime: the binaries and the model, as the distroless `nonroot` user (65532) ----
FROM gcr.io/distroless/static-debian12:nonroot AS fiber
COPY --from=build /out/healthcheck /usr/local/bin/healthcheck
COPY --from=build /src/fiber/bin/fiber-endpoint /usr/local/bin/fiber-endpoint
# The model, overridable by mounting another file here.
COPY models/regression/model.txt /models/model.txt
ENV FIBER_ENDPOINTS_MODEL=/models/model.txt
USER 65532:65532
EXPOSE 8001
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/healthcheck", "http://127.0.0.1:8001/health"]
# fiber_go.command's flags (tested); the V2 model name is "model" unless an appended
# `-model-name NAME` overrides it (a later flag wins), as the KServe runtime does.
ENTRYPOINT ["/usr/local/bin/fiber-endpoint", "-model", "/models/model.txt", "-host", "0.0.0.0", "-port", "8001", "-model-name", "model"]
