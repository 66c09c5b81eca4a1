// Faults a real API server cannot be made to produce on demand; the rest of KubeClient is tested
// against a real kube-apiserver in tests/kube_client_test.ts.
import assert from "node:assert/strict";
import {
  json,
  plainHttpConfig,
  startFaultServer,
  statusResponse,
} from "../../tests/_support/fault_server.ts";
import { readRequestHead } from "../../tests/_support/kube_http_peers.ts";
import { startTcpServer, writeAll } from "../../tests/_support/net_tcp.ts";
import { ApiError } from "./api_error.ts";
import { KubeClient, type RequestResult } from "./client.ts";
import { SERVICES } from "./resources.ts";

const service = { metadata: { name: "s", namespace: "n", resourceVersion: "1" } };

Deno.test("request() waits as Retry-After says on 429 (seconds or HTTP date), for any method", async () => {
  const retryAfter = ["1", new Date(Date.now() + 1_000).toUTCString()];
  await using server = startFaultServer((_request, index) =>
    index % 2 === 0
      ? statusResponse(429, "TooManyRequests", { "Retry-After": retryAfter[index / 2] ?? "1" })
      : json(service)
  );
  // A backoff of 10 minutes: only the server's Retry-After lets these calls finish in time.
  using client = new KubeClient(server.config, { retryInitialMs: 600_000, retryMaxMs: 600_000 });
  const got = await client.get(SERVICES, "s", {
    namespace: "n",
    signal: AbortSignal.timeout(30_000),
  });
  assert.equal(got.metadata?.name, "s");
  assert.equal(got.kind, "Service");
  await client.create(SERVICES, service, { signal: AbortSignal.timeout(30_000) });
  assert.deepEqual(server.requests.map((r) => r.method), ["GET", "GET", "POST", "POST"]);
});

Deno.test("request() retries 503 for idempotent requests only, then throws ServerError", async () => {
  await using server = startFaultServer(() => statusResponse(503, "ServiceUnavailable"));
  using client = new KubeClient(server.config, {
    maxAttempts: 3,
    retryInitialMs: 1,
    retryMaxMs: 2,
  });
  await assert.rejects(client.get(SERVICES, "s", { namespace: "n" }), (error: unknown) => {
    assert.ok(error instanceof ApiError);
    assert.equal(error.kind, "ServerError");
    assert.equal(error.status, 503);
    assert.match(
      error.message,
      /GET \/api\/v1\/namespaces\/n\/services\/s failed: 503 ServiceUnavailable/,
    );
    return true;
  });
  assert.equal(server.requests.length, 3);
  await assert.rejects(client.create(SERVICES, service), /POST .* 503/);
  await assert.rejects(
    client.patch(SERVICES, { name: "s", type: "json", patch: [], namespace: "n" }),
    /PATCH .* 503/,
  );
  assert.equal(server.requests.length, 5);
  await assert.rejects(
    client.patch(SERVICES, { name: "s", type: "merge", patch: {}, namespace: "n" }),
    /PATCH .* 503/,
  );
  assert.equal(server.requests.length, 8);
});

Deno.test("request() turns a stalled answer into a Timeout ApiError", async () => {
  await using server = startFaultServer((_request, _index, self) =>
    new Response(self.stalledBody(['{"kind":']), {
      headers: { "content-type": "application/json" },
    })
  );
  using client = new KubeClient(server.config, { maxAttempts: 1, timeoutMs: 100 });
  await assert.rejects(client.get(SERVICES, "s", { namespace: "n" }), (error: unknown) => {
    assert.ok(error instanceof ApiError);
    assert.equal(error.kind, "Timeout");
    assert.equal(error.status, 0);
    assert.match(error.message, /no complete answer from http:\/\/127\.0\.0\.1:\d+ within 100 ms/);
    return true;
  });
});

Deno.test("request() retries a dropped connection for idempotent requests only", async () => {
  const answer = JSON.stringify(service);
  await using server = startTcpServer(async (conn) => {
    // Connections 1 and 3 are dropped before any answer; the others get a minimal HTTP answer.
    if (server.accepted % 2 === 1) return;
    if (await readRequestHead(conn) === undefined) return;
    await writeAll(
      conn,
      new TextEncoder().encode(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n" +
          `content-length: ${answer.length}\r\n\r\n${answer}`,
      ),
    );
  });
  using client = new KubeClient(plainHttpConfig(server.port), {
    maxAttempts: 2,
    retryInitialMs: 1,
    retryMaxMs: 2,
  });
  const got = await client.get(SERVICES, "s", { namespace: "n" });
  assert.equal(got.metadata?.name, "s");
  assert.equal(server.accepted, 2, "the GET was sent again on a new connection");
  await assert.rejects(client.create(SERVICES, service), (error: unknown) => {
    assert.ok(error instanceof ApiError && error.kind === "Network", String(error));
    assert.match(
      error.message,
      /^POST \/api\/v1\/namespaces\/n\/services failed: Network: cannot reach/,
    );
    return true;
  });
  assert.equal(server.accepted, 3, "a POST is not sent twice");
});

Deno.test("request() reports a refused connection as a Network error after its attempts", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  using client = new KubeClient(plainHttpConfig(port), {
    maxAttempts: 2,
    retryInitialMs: 1,
    retryMaxMs: 2,
  });
  await assert.rejects(client.request({ path: "/api" }), (error: unknown) => {
    assert.ok(error instanceof ApiError);
    assert.equal(error.kind, "Network");
    assert.match(error.message, /cannot reach http:\/\/127\.0\.0\.1:\d+: .*(refused|Connect)/i);
    return true;
  });
});

Deno.test("request() stops at once when its signal aborts, with the signal's reason", async () => {
  await using server = startFaultServer((_request, _index, self) =>
    new Response(self.stalledBody())
  );
  using client = new KubeClient(server.config);
  const controller = new AbortController();
  const pending = client.request({ path: "/api", signal: controller.signal });
  controller.abort(new Error("shutting down"));
  await assert.rejects(pending, /shutting down/);
});

Deno.test("onResult sees every attempt: its method, status code and host, <error> without an answer", async () => {
  await using server = startFaultServer((_request, index) =>
    index === 0 ? statusResponse(503, "ServiceUnavailable") : json(service)
  );
  const results: RequestResult[] = [];
  using client = new KubeClient(server.config, {
    retryInitialMs: 1,
    retryMaxMs: 2,
    onResult: (result) => results.push(result),
  });
  await client.get(SERVICES, "s", { namespace: "n" });
  const host = new URL(server.config.server).host;
  assert.deepEqual(results, [
    { method: "GET", code: "503", host },
    { method: "GET", code: "200", host },
  ]);

  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const unreachable: RequestResult[] = [];
  using refused = new KubeClient(plainHttpConfig(port), {
    maxAttempts: 1,
    onResult: (result) => unreachable.push(result),
  });
  await assert.rejects(refused.get(SERVICES, "s", { namespace: "n" }), ApiError);
  assert.deepEqual(unreachable, [{ method: "GET", code: "<error>", host: `127.0.0.1:${port}` }]);
});
