# Stand-in for jaegertracing/jaeger:2.13.0, built by scripts/containers.sh ONLY where no image
# registry is reachable, tagged with that name ONLY in the project's private engine: the same
# Jaeger version that scripts/install-jaeger.sh builds from the Go module proxy, at the official
# image's path and listening on every interface as it does (JAEGER_LISTEN_HOST), with busybox
# `wget` for compose.yaml's health check (the official image is Alpine: busybox wget).
FROM fiber-endpoints-standin/debian:bookworm
# As Debian's official images (and so python:*-slim) do: apt keeps no package lists' caches.
RUN printf '%s\n' \
      'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };' \
      'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };' \
      'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";' >/etc/apt/apt.conf.d/docker-clean \
    && rm -f /var/cache/apt/*.bin
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends busybox-static \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /bin/busybox /usr/local/bin/wget
COPY jaeger /cmd/jaeger/jaeger-linux
ENV JAEGER_LISTEN_HOST=0.0.0.0
USER 10001
EXPOSE 4317 4318 16686 13133
ENTRYPOINT ["/cmd/jaeger/jaeger-linux"]
LABEL org.opencontainers.image.description="LOCAL STAND-IN for jaegertracing/jaeger:2.13.0 (built from the Go module proxy), fiber-endpoints private engine only"
