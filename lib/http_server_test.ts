import assert from "node:assert/strict";
import { metricsTls, startHttpServer } from "./http_server.ts";

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

Deno.test("metricsTls() without a cert path makes a certificate the HTTPS server serves", async () => {
  const tls = await metricsTls({ metricsCertName: "tls.crt", metricsCertKey: "tls.key" });
  await using server = startHttpServer({
    name: "metrics",
    address: { hostname: "127.0.0.1", port: 0 },
    handler: () => new Response("secure"),
    tls,
  });
  using client = Deno.createHttpClient({ caCerts: [tls.cert] });
  const response = await fetch(`https://127.0.0.1:${server.port}/`, { client });
  assert.equal(await response.text(), "secure");
  const again = await metricsTls({ metricsCertName: "tls.crt", metricsCertKey: "tls.key" });
  assert.notEqual(again.key, tls.key, "a new key at each start");
});

Deno.test("metricsTls() reads the files of the cert path, naming a missing one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "http_server_test_" });
  try {
    await Deno.writeTextFile(`${dir}/c.pem`, "CERT");
    await Deno.writeTextFile(`${dir}/k.pem`, "KEY");
    const flags = { metricsCertPath: `${dir}/`, metricsCertName: "c.pem", metricsCertKey: "k.pem" };
    assert.deepEqual(await metricsTls(flags), { cert: "CERT", key: "KEY" });
    await assert.rejects(
      metricsTls({ ...flags, metricsCertKey: "missing.pem" }),
      new RegExp(`Cannot read the metrics TLS file ${dir}/missing\\.pem: `),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
