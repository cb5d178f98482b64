# Firebreak in a container: a static binary on a distroless base, as a non-root user.
#   docker build -t firebreak .
#   docker run --rm -v /etc/firebreak:/etc/firebreak:ro -v firebreak-b3:/var/lib/firebreak/b3 \
#     --env-file /etc/firebreak/b3.env firebreak run -config /etc/firebreak/b3.yaml
# SIGTERM (docker stop) flushes the outbox within shutdown_timeout: give docker stop -t 20.
# SIGHUP (docker kill -s HUP) reloads the config.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/firebreak ./cmd/firebreak \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/firebreak-agent ./cmd/firebreak-agent \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/firebreak-sim ./cmd/firebreak-sim \
 && mkdir -p /out/state && chown 65532:65532 /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/firebreak /out/firebreak-agent /out/firebreak-sim /usr/local/bin/
COPY --from=build --chown=65532:65532 /out/state /var/lib/firebreak
USER 65532:65532
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/firebreak"]
CMD ["demo"]
