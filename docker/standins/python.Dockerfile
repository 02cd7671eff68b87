# Stand-in for python:3.11.14-slim-bookworm, built by scripts/containers.sh ONLY where no image
# registry is reachable, and tagged with that name ONLY in the project's private engine. Debian
# bookworm's own Python 3.11 (3.11.2, not 3.11.14) from Debian packages; `python` and `pip` on
# PATH as in the official image; pip may install outside a venv as there (no EXTERNALLY-MANAGED).
# The host's extra CA certificates (if any) are trusted here, so pip and uv work behind an
# inspecting proxy; they never reach the official images or the repository's Dockerfiles.
FROM fiber-endpoints-standin/debian:bookworm
# As Debian's official images (and so python:*-slim) do: apt keeps no package lists' caches.
RUN printf '%s\n' \
      'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };' \
      'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };' \
      'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";' >/etc/apt/apt.conf.d/docker-clean \
    && rm -f /var/cache/apt/*.bin
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-pip python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* /usr/lib/python3.11/EXTERNALLY-MANAGED \
    && ln -s /usr/bin/python3 /usr/local/bin/python \
    && ln -s /usr/bin/pip3 /usr/local/bin/pip
COPY extra-ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates
# uv ships its own roots unless told to read a file: the system bundle, with the extra CAs.
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt LANG=C.UTF-8
LABEL org.opencontainers.image.description="LOCAL STAND-IN for python:3.11.14-slim-bookworm (Debian python3 3.11.2), fiber-endpoints private engine only"
CMD ["python3"]
