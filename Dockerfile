# newtermsd container image.
#
# Two stages on debian:bookworm-slim, the same Debian the project builds and tests on:
#   build   - compiler and -dev packages, a CMake build of the daemon only (the tests run in CI,
#             not here, so the image build stays a few minutes on a small machine);
#   runtime - only the shared libraries the binary links, the binary and the shipped rules.
# The runtime user is numeric (10001) so Kubernetes can prove runAsNonRoot without /etc/passwd.
# No shell tools are added (no curl): Kubernetes probes /healthz and /readyz over HTTP itself.
#
#   podman build -t newtermsd .        (or docker build; .ci/container-smoke.sh builds and runs it)

FROM debian:bookworm-slim AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      libmicrohttpd-dev libjansson-dev libhiredis-dev zlib1g-dev \
      libssl-dev \
      libcurl4-openssl-dev \
      libmaxminddb-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the daemon is built from: a change under tests/, deploy/ or docs does not
# invalidate the compile layer.
COPY CMakeLists.txt ./
COPY service/ service/
COPY rules/ rules/
# RelWithDebInfo is the configuration the test suite runs; the symbols are stripped
# afterwards to keep the runtime image small.
# BUILD_TESTING=OFF: no unit tests here, so `check` is not needed either.
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF \
 && cmake --build build --target newtermsd -j"$(nproc)" \
 && strip --strip-unneeded build/newtermsd

FROM debian:bookworm-slim AS runtime
ENV DEBIAN_FRONTEND=noninteractive
# Runtime libraries of the build stage's -dev packages (bookworm sonames). libssl3 is linked
# directly (TLS to Redis, rediss://; libmicrohttpd uses GnuTLS, not OpenSSL), and
# ca-certificates is the system CA store that verifies a managed Redis' certificate by default.
# libcurl4: the alert outputs (--outputs) POST to https:// receivers (Slack, PagerDuty,
# webhooks) with certificate verification on.
# apt's package caches (*.bin, ~75 MB) go too: not every base image has docker-clean.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libmicrohttpd12 libjansson4 libhiredis0.14 zlib1g \
      libssl3 libcurl4 ca-certificates libmaxminddb0 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb \
           /var/log/apt /var/log/dpkg.log
COPY --from=build /src/build/newtermsd /usr/local/bin/newtermsd
COPY rules/ /etc/newtermsd/rules/
# Fail the image build, not the first pod start, if a shared library is missing.
RUN if ldd /usr/local/bin/newtermsd | grep 'not found'; then exit 1; fi
# GeoIP (optional): mount MaxMind DB files here read-only and name them, e.g.
#   -v /srv/geoip:/var/lib/newtermsd/geoip:ro \
#   -e NEWTERMSD_GEOIP_DB=/var/lib/newtermsd/geoip/GeoLite2-ASN.mmdb,/var/lib/newtermsd/geoip/GeoLite2-City.mmdb
# No database ships in the image (GeoLite2's licence needs a MaxMind account; README "GeoIP").
RUN mkdir -p /var/lib/newtermsd/geoip
ENV NEWTERMSD_RULES=/etc/newtermsd/rules \
    NEWTERMSD_LISTEN=0.0.0.0:8080
LABEL org.opencontainers.image.title="newtermsd" \
      org.opencontainers.image.description="Streaming Elastic new-terms detection rules for AWS CloudTrail" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"
USER 10001:10001
EXPOSE 8080
# The daemon drains in-flight requests on SIGTERM and exits 0 (docs/spec.md §4).
STOPSIGNAL SIGTERM
ENTRYPOINT ["newtermsd", "serve"]
