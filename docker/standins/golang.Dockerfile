# Stand-in for golang:1.26.8-bookworm, built by scripts/containers.sh ONLY where no image registry
# is reachable, and tagged with that name ONLY in the project's private engine: Debian bookworm
# plus the Go 1.26.8 toolchain from the Go module proxy (golang.org/toolchain), at /usr/local/go
# as in the official image. GOPROXY is the host's; the host's extra CA certificates are trusted.
FROM fiber-endpoints-standin/debian:bookworm
# As Debian's official images (and so python:*-slim) do: apt keeps no package lists' caches.
RUN printf '%s\n' \
      'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };' \
      'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };' \
      'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";' >/etc/apt/apt.conf.d/docker-clean \
    && rm -f /var/cache/apt/*.bin
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git \
    && rm -rf /var/lib/apt/lists/*
COPY extra-ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates
COPY go/ /usr/local/go/
ARG GOPROXY=https://proxy.golang.org,direct
ENV GOPATH=/go PATH=/go/bin:/usr/local/go/bin:$PATH GOTOOLCHAIN=local GOPROXY=$GOPROXY
WORKDIR /go
LABEL org.opencontainers.image.description="LOCAL STAND-IN for golang:1.26.8-bookworm (Go from golang.org/toolchain), fiber-endpoints private engine only"
