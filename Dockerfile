# syntax=docker/dockerfile:1
# rollbook in a container. Two stages: the Rust toolchain builds the shipped binary (the `dist`
# profile: release with link-time optimisation); a slim Debian image runs it as an unprivileged user.
#
#   docker build -t rollbook .
#   docker run --rm --read-only --tmpfs /tmp \
#     -v rollbook-state:/var/lib/rollbook -v "$PWD/serve:/etc/rollbook:ro" \
#     -e ROLLBOOK_SERVE_TOKEN -p 9095:9095 rollbook serve --config /etc/rollbook/serve.toml
#
# Read-only root filesystem: at run time rollbook writes only to
#   /var/lib/rollbook  the state directory (journals, locks, library cache): a volume, shared by
#                      replicas of `rollbook serve` (with `--lock k8s:...`)
#   /tmp               scratch space (HOME points here too): a tmpfs or an emptyDir
# Everything else (the binary, the shipped runbooks under /usr/share/rollbook) is read only.
# No secret is baked in: tokens and credentials come from the environment at run time.

ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN} AS build
WORKDIR /src
COPY . .
# The registry and target folders are build caches, kept between builds and out of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist --locked --bin rollbook \
 && install -D -m 0755 target/dist/rollbook /out/usr/local/bin/rollbook \
 && mkdir -p /out/usr/share/rollbook \
 && cp -r runbooks /out/usr/share/rollbook/runbooks

FROM debian:${DEBIAN}-slim AS runtime
# ca-certificates: TLS to Azure and Kubernetes; git: fetching runbook libraries (`rollbook lock`).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates git \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 rollbook \
 && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin rollbook \
 && install -d -m 0700 -o 10001 -g 10001 /var/lib/rollbook
COPY --from=build /out/ /
ENV ROLLBOOK_STATE_DIR=/var/lib/rollbook \
    HOME=/tmp \
    NO_COLOR=1
VOLUME ["/var/lib/rollbook"]
USER 10001:10001
EXPOSE 9095
ENTRYPOINT ["/usr/local/bin/rollbook"]
CMD ["serve", "--config", "/etc/rollbook/serve.toml"]
