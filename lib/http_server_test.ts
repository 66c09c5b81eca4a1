import assert from "node:assert/strict";
import { startHttpServer } from "./http_server.ts";

Deno.test("startHttpServer() serves on the bound port and closes", async () => {
  await using server = startHttpServer({
    name: "test",
    address: { hostname: "127.0.0.1", port: 0 },
    handler: (request) => new Response(new URL(request.url).pathname),
  });
  assert.equal(server.hostname, "127.0.0.1");
  assert.ok(server.port > 0);
  const response = await fetch(`http://127.0.0.1:${server.port}/hello`);
  assert.equal(await response.text(), "/hello");
});

Deno.test("startHttpServer() names the server and address it cannot bind", async () => {
  await using first = startHttpServer({
    name: "first",
    address: { hostname: "127.0.0.1", port: 0 },
    handler: () => new Response(),
  });
  assert.throws(
    () =>
      startHttpServer({
        name: "metrics",
        address: { hostname: "127.0.0.1", port: first.port },
        handler: () => new Response(),
      }),
    (error: unknown) =>
      error instanceof Error &&
      error.message.startsWith(`Cannot serve metrics on 127.0.0.1:${first.port}: `) &&
      /in use/i.test(error.message),
  );
});
