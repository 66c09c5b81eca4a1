# undying-proxy image: a `deno compile`d binary on distroless, non-root, without a shell.
#
#   docker build -t undying-proxy .
#   docker run --rm --network host -v "$PWD/k8s/samples:/config:ro" undying-proxy --config /config/local.yaml
#
# The binary's permissions are those of the `compile` task in deno.json (the single source of truth,
# shared with the tests that run the program): net, read, ffi (the threads of the batched UDP and
# splice TCP engines, and libc for the fd limit, /proc and TCP resets), a few env vars, the host
# name; no write, no run.

# Builder: the official Deno image, pinned to the version CI uses.
FROM denoland/deno:2.9.6 AS build
ENV DENO_NO_UPDATE_CHECK=1
WORKDIR /src
COPY deno.json deno.lock ./
COPY main.ts ./
COPY lib ./lib
COPY k8s ./k8s
# Fetch the npm packages pinned by deno.lock, then build exactly what the compile task builds.
RUN deno install --frozen --entrypoint main.ts
RUN deno task compile && ./dist/undying-proxy --version
# The Go operator's image ran `/manager`: keep that path as a link, so manifests that name it work.
RUN mkdir /links && ln -s /undying-proxy /links/manager

# Runtime: glibc + libgcc (what the Deno runtime links against, and the libc.so.6 the batched UDP
# engine opens), user 65532, no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/dist/undying-proxy /undying-proxy
# A directory copy keeps the link a link.
COPY --from=build /links/ /
USER 65532:65532
# Metrics and health probes (defaults of --metrics-bind-address and --health-probe-bind-address).
EXPOSE 8080 8081
ENTRYPOINT ["/undying-proxy"]
