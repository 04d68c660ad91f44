# dvrd on Debian 12: the image installs the Debian package (packaging/make-deb.sh), so that apt
# resolves DPDK's runtime libraries from Debian's archive and the image holds what a host
# installing the package holds.
#
# From the package built on this machine (`make deb` first; what `make test` builds and runs):
#   docker build --target runtime -t dvrd .
# From source, on a machine that reaches rustup.rs (BuildKit skips the `runtime` stage; the
# classic builder builds every stage before its target, so it wants `make deb` done too):
#   DOCKER_BUILDKIT=1 docker build --target from-source -t dvrd .
# Run it (the config at /etc/dvrd/dvrd.toml, EAL with hugepages or `eal.hugepages = false`;
# where runc cannot grant every capability, the --cap-add list of docs/operations.md):
#   docker run --rm --privileged --network host \
#     -v /dev/hugepages:/dev/hugepages -v /etc/dvrd:/etc/dvrd dvrd
#
# `runtime` comes first: the classic builder (Debian's docker.io without BuildKit) then
# builds it alone, with no rustup download.

FROM debian:12 AS runtime
ENV DEBIAN_FRONTEND=noninteractive
# .dockerignore lets target/debian/dvrd_*.deb alone of target/ into the build context.
COPY target/debian/ /tmp/deb/
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends /tmp/deb/dvrd_*.deb \
 && rm -rf /var/lib/apt/lists/* /tmp/deb
ENTRYPOINT ["/usr/bin/dvrd", "--config", "/etc/dvrd/dvrd.toml"]

FROM debian:12 AS build
ENV DEBIAN_FRONTEND=noninteractive PATH=/root/.cargo/bin:$PATH
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends curl ca-certificates \
 && curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain stable
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh --build
COPY . .
RUN cargo build --release --bin dvrd --bin dvrctl && packaging/make-deb.sh

FROM debian:12 AS from-source
ENV DEBIAN_FRONTEND=noninteractive
COPY --from=build /src/target/debian/ /tmp/deb/
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends /tmp/deb/dvrd_*.deb \
 && rm -rf /var/lib/apt/lists/* /tmp/deb
ENTRYPOINT ["/usr/bin/dvrd", "--config", "/etc/dvrd/dvrd.toml"]
