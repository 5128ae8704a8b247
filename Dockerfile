# syntax=docker/dockerfile:1
# schnitzel: the Linux container lane (docs/operations.md, "Docker").
#   docker build -t schnitzel:local --build-arg VERSION=$(git describe --always) .
#   docker run --rm -v "$PWD/configs/graphs:/etc/schnitzel-stream/graphs:ro" \
#     -e SCHNITZEL_GRAPH=/etc/schnitzel-stream/graphs/dev_inproc_demo_v2.yaml schnitzel:local
# Untested here (no Docker engine on the build machine); see docs/operations.md.

ARG GO_VERSION=1.26

# --- build: a static binary (pure-Go SQLite, no cgo) --------------------------
FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/schnitzel-stream/schnitzel/cli.Version=${VERSION}" \
      -o /out/schnitzel ./cmd/schnitzel

# --- runtime: Debian slim with ffmpeg for the video nodes ---------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/*

# The Linux path classes (schnitzel paths): config, state (working directory:
# relative paths in a graph such as outputs/queues/x.sqlite3 land here), logs.
RUN groupadd --system --gid 10001 schnitzel \
 && useradd --system --uid 10001 --gid schnitzel --no-create-home \
      --home-dir /var/lib/schnitzel-stream --shell /usr/sbin/nologin schnitzel \
 && mkdir -p /etc/schnitzel-stream/graphs /var/lib/schnitzel-stream /var/log/schnitzel-stream \
 && chown schnitzel:schnitzel /var/lib/schnitzel-stream /var/log/schnitzel-stream \
 && chmod 0750 /var/lib/schnitzel-stream /var/log/schnitzel-stream

COPY --from=build /out/schnitzel /usr/local/bin/schnitzel
COPY configs/graphs/ /etc/schnitzel-stream/graphs/

# The graph the container runs and health-checks; override with -e.
ENV SCHNITZEL_GRAPH=/etc/schnitzel-stream/graphs/dev_inproc_demo_v2.yaml

VOLUME ["/etc/schnitzel-stream", "/var/lib/schnitzel-stream", "/var/log/schnitzel-stream"]
WORKDIR /var/lib/schnitzel-stream
USER schnitzel:schnitzel

# SIGTERM starts the graceful drain; give it the same 30 s systemd gives
# (docker stop -t 40 / compose stop_grace_period: 40s).
STOPSIGNAL SIGTERM
# quick_check keeps the 30 s probe cheap on large queues; run
# `schnitzel doctor` by hand for the full integrity_check.
HEALTHCHECK --interval=30s --timeout=20s --start-period=30s --retries=3 \
  CMD ["sh", "-c", "exec schnitzel doctor --graph \"$SCHNITZEL_GRAPH\" --service=false --queue-check=quick"]

# exec: schnitzel is PID 1 and receives SIGTERM itself. Extra arguments to
# `docker run IMAGE ...` are appended (e.g. --max-events 10).
ENTRYPOINT ["sh", "-c", "exec /usr/local/bin/schnitzel --graph \"$SCHNITZEL_GRAPH\" \"$@\"", "schnitzel"]
CMD []
