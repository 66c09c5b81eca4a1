import assert from "node:assert/strict";
import { fileLimit, libcAvailable, openFdCount, readProcFile, resetTcp } from "./libc.ts";

Deno.test("libc: the fd limit, open fds and /proc files are read through FFI", () => {
  assert.ok(libcAvailable(), "needs --allow-ffi (deno task test grants it) and glibc");
  const limit = fileLimit();
  assert.ok(limit !== undefined && limit.soft > 0 && limit.soft <= limit.hard, String(limit));
  const before = openFdCount() ?? 0;
  const file = Deno.openSync("/dev/null");
  assert.equal(openFdCount(), before + 1);
  file.close();
  assert.match(readProcFile("/proc/self/limits") ?? "", /Max open files/);
  assert.equal(readProcFile("/proc/self/does-not-exist"), undefined);
});

Deno.test("libc: resetTcp() makes the peer see a reset, not an end of stream", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  using client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const accepted = await listener.accept();
  assert.ok(resetTcp(accepted));
  accepted.close();
  await assert.rejects(client.read(new Uint8Array(8)), Deno.errors.ConnectionReset);
});

Deno.test("libc: resetTcp() also resets a connection Deno dialed (found by its ports)", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const dialed = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  using accepted = await listener.accept();
  assert.ok(resetTcp(dialed));
  dialed.close();
  await assert.rejects(accepted.read(new Uint8Array(8)), Deno.errors.ConnectionReset);
});
