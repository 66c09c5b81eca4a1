import assert from "node:assert/strict";
import { runPermissionProbe } from "../../tests/_support/permission_probe.ts";
import { SystemWorker, systemWorker } from "./system_worker_client.ts";

Deno.test("system worker: the fd limit, open fds and allow-listed /proc files", async () => {
  using system = await SystemWorker.start();
  assert.equal(systemWorker(), system, "installed while it runs");
  const limit = await system.fdLimit();
  assert.ok(limit !== undefined && limit.soft > 0 && limit.soft <= limit.hard, String(limit));
  const before = await system.openFdCount() ?? 0;
  const file = Deno.openSync("/dev/null");
  assert.equal(await system.openFdCount(), before + 1, "counts this thread's descriptors");
  file.close();
  assert.match(await system.readProcFile("/proc/self/limits") ?? "", /Max open files/);
  assert.match(await system.readProcFile("/proc/net/snmp") ?? "", /^Udp: /m);
  assert.equal(await system.readProcFile("/proc/self/environ"), undefined, "not allow-listed");
  assert.equal(await system.readProcFile("/etc/passwd"), undefined, "not allow-listed");
  system[Symbol.dispose]();
  assert.equal(systemWorker(), undefined, "uninstalled when disposed");
  assert.equal(await system.fdLimit(), undefined, "a stopped worker answers nothing");
});

Deno.test("system worker: resetTcp() makes the peer see a reset, not an end of stream", async () => {
  using system = await SystemWorker.start();
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  using client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const accepted = await listener.accept();
  assert.ok(await system.resetTcp(accepted));
  accepted.close();
  await assert.rejects(client.read(new Uint8Array(8)), Deno.errors.ConnectionReset);
});

Deno.test("system worker: resetTcp() also resets a connection Deno dialed (found by its ports)", async () => {
  using system = await SystemWorker.start();
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const dialed = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  using accepted = await listener.accept();
  assert.ok(await system.resetTcp(dialed));
  dialed.close();
  await assert.rejects(accepted.read(new Uint8Array(8)), Deno.errors.ConnectionReset);
});

Deno.test("system worker: keeps working after the main thread revoked FFI, which can open no library", async () => {
  const report = await runPermissionProbe("system_worker_probe.ts") as {
    revoked: string;
    dlopen: string;
    fdLimit?: { soft: number };
    openFds: number;
    limitsFile: boolean;
    reset: boolean;
    peer: string;
  };
  assert.equal(report.revoked, "prompt");
  assert.equal(report.dlopen, "NotCapable", "the main thread cannot dlopen after the revoke");
  assert.ok((report.fdLimit?.soft ?? 0) > 0, JSON.stringify(report));
  assert.ok(report.openFds > 0, JSON.stringify(report));
  assert.equal(report.limitsFile, true);
  assert.equal(report.reset, true);
  assert.equal(report.peer, "ConnectionReset");
});
