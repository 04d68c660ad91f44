# Multi-stage build of dvrd on Debian 12. The build stage installs what the project needs with
# the same script as the README (scripts/install-deps.sh); the runtime stage carries only
# DPDK's runtime libraries and the two binaries.
#
#   docker build -t dvrd .
#   docker run --rm --privileged --network host \
#     -v /dev/hugepages:/dev/hugepages -v /etc/dvrd:/etc/dvrd dvrd

FROM debian:12 AS build
ENV DEBIAN_FRONTEND=noninteractive PATH=/root/.cargo/bin:$PATH
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends curl ca-certificates \
 && curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain stable
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh
COPY . .
RUN cargo build --release --bin dvrd --bin dvrctl

FROM debian:12 AS runtime
ENV DEBIAN_FRONTEND=noninteractive
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh --runtime && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh
COPY --from=build /src/target/release/dvrd /src/target/release/dvrctl /usr/local/bin/
COPY dvrd.example.toml /etc/dvrd/dvrd.toml
ENTRYPOINT ["/usr/local/bin/dvrd", "--config", "/etc/dvrd/dvrd.toml"]
