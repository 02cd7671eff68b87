# Stand-in for gcr.io/distroless/static-debian12:nonroot, built by scripts/containers.sh ONLY where
# no image registry is reachable, tagged with that name ONLY in the project's private engine: what
# the real one holds for a static binary (CA bundle, tzdata, /etc/passwd with root and nonroot
# 65532, /tmp), and no shell. Debian's CA bundle, without the host's extra CAs.
FROM fiber-endpoints-standin/debian:bookworm AS files
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tzdata \
    && mkdir -p /out/etc/ssl/certs /out/tmp /out/home/nonroot /out/usr/share \
    && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ \
    && cp -a /usr/share/zoneinfo /out/usr/share/ \
    && printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >/out/etc/passwd \
    && printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >/out/etc/group \
    && chmod 1777 /out/tmp && chown 65532:65532 /out/home/nonroot

FROM scratch
COPY --from=files /out/ /
USER 65532:65532
WORKDIR /home/nonroot
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
LABEL org.opencontainers.image.description="LOCAL STAND-IN for gcr.io/distroless/static-debian12:nonroot, fiber-endpoints private engine only"
