import assert from "node:assert/strict";
import { loadAll } from "js-yaml";
import {
  BUFFER_BYTES,
  haproxyMaxConnections,
  type PeerPorts,
  renderHaproxyConfig,
  renderNginxConfig,
  renderUndyingConfig,
  socatCommands,
  UDP_TIMEOUT_SECONDS,
  undyingSpecs,
} from "./peer_configs.ts";

const PORTS: PeerPorts = {
  listen: { bulk: 41001, echo: 41002, udp: 41003 },
  target: { bulk: 42001, echo: 42002, udp: 42003 },
};

Deno.test("renderNginxConfig() forwards each port on loopback with one worker and 64 KiB buffers", () => {
  const config = renderNginxConfig(PORTS, "/tmp/x", "/mod/stream.so");
  assert.match(config, /^load_module \/mod\/stream\.so;$/m);
  assert.match(config, /^worker_processes 1;$/m);
  assert.match(config, /^daemon off;$/m);
  assert.match(config, new RegExp(`proxy_buffer_size ${BUFFER_BYTES};`));
  assert.match(config, /listen 127\.0\.0\.1:41001 backlog=4096;\s+proxy_pass 127\.0\.0\.1:42001;/);
  assert.match(config, /listen 127\.0\.0\.1:41002 backlog=4096;\s+proxy_pass 127\.0\.0\.1:42002;/);
  assert.match(config, /listen 127\.0\.0\.1:41003 udp;\s+proxy_pass 127\.0\.0\.1:42003;/);
  assert.match(config, new RegExp(`proxy_timeout ${UDP_TIMEOUT_SECONDS}s;`));
  assert.doesNotMatch(config, /0\.0\.0\.0|\[::\]/);
  assert.equal(config.split("{").length, config.split("}").length, "balanced braces");
});

Deno.test("renderNginxConfig() keeps half-closed connections open only when asked", () => {
  assert.doesNotMatch(renderNginxConfig(PORTS, "/tmp/x", "/mod/stream.so"), /proxy_half_close/);
  const config = renderNginxConfig(PORTS, "/tmp/x", "/mod/stream.so", { halfClose: true });
  assert.match(config, /^\s+proxy_half_close on;$/m);
});

Deno.test("renderHaproxyConfig() has one thread, TCP mode and only the TCP forwards", () => {
  const config = renderHaproxyConfig(PORTS, 1234);
  assert.match(config, /^\s+nbthread 1$/m);
  assert.match(config, /^\s+maxconn 1234$/m);
  assert.match(config, /^\s+mode tcp$/m);
  assert.match(config, new RegExp(`tune\\.bufsize ${BUFFER_BYTES}`));
  assert.match(config, /bind 127\.0\.0\.1:41001\s+server target 127\.0\.0\.1:42001/);
  assert.match(config, /bind 127\.0\.0\.1:41002\s+server target 127\.0\.0\.1:42002/);
  assert.doesNotMatch(config, /41003|42003/);
});

Deno.test("haproxyMaxConnections() leaves two descriptors per connection under the hard limit", () => {
  assert.equal(haproxyMaxConnections(20000), 8000);
  assert.equal(haproxyMaxConnections(4096), 1998);
  assert.equal(haproxyMaxConnections(50), 1);
});

Deno.test("socatCommands() runs one forking socat per forward, bound to loopback", () => {
  const commands = socatCommands(PORTS);
  assert.deepEqual(commands.map((c) => c.name), ["socat-bulk", "socat-echo", "socat-udp"]);
  assert.deepEqual(commands[0]?.args, [
    `-b${BUFFER_BYTES}`,
    "TCP4-LISTEN:41001,bind=127.0.0.1,fork,reuseaddr,nodelay,backlog=4096",
    "TCP4:127.0.0.1:42001,nodelay",
  ]);
  assert.ok(commands[2]?.args.includes("UDP4-LISTEN:41003,bind=127.0.0.1,fork,reuseaddr"));
  assert.ok(commands[2]?.args.includes("UDP4:127.0.0.1:42003"));
  assert.ok(commands[2]?.args.includes(`-T${UDP_TIMEOUT_SECONDS}`));
});

Deno.test("renderUndyingConfig() writes UnDyingProxy documents that carry the specs", () => {
  const specs = undyingSpecs(PORTS);
  const documents = loadAll(renderUndyingConfig(specs));
  assert.deepEqual(documents, [
    {
      apiVersion: "proxy.sfact.io/v1alpha1",
      kind: "UnDyingProxy",
      metadata: { name: "bulk", namespace: "bench" },
      spec: { tcp: { listenPort: 41001, targetPort: 42001, targetHost: "127.0.0.1" } },
    },
    {
      apiVersion: "proxy.sfact.io/v1alpha1",
      kind: "UnDyingProxy",
      metadata: { name: "echo", namespace: "bench" },
      spec: {
        tcp: { listenPort: 41002, targetPort: 42002, targetHost: "127.0.0.1" },
        udp: {
          listenPort: 41003,
          targetPort: 42003,
          targetHost: "127.0.0.1",
          readTimeoutSeconds: UDP_TIMEOUT_SECONDS,
          writeTimeoutSeconds: 5,
        },
      },
    },
  ]);
});
