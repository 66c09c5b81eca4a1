import assert from "node:assert/strict";
import { UdpSessionTable } from "./udp_session_table.ts";

function session(hostname: string, port: number) {
  return { client: { transport: "udp" as const, hostname, port } };
}

Deno.test("UdpSessionTable finds sessions by hostname and port", () => {
  const table = new UdpSessionTable<ReturnType<typeof session>>();
  const a = session("127.0.0.1", 1000);
  const b = session("127.0.0.1", 1001);
  const c = session("::1", 1000);
  for (const s of [a, b, c]) table.add(s);
  assert.equal(table.size, 3);
  assert.equal(table.get("127.0.0.1", 1001), b);
  assert.equal(table.get("::1", 1000), c);
  assert.equal(table.get("::1", 1001), undefined);
  assert.deepEqual(new Set(table), new Set([a, b, c]));
});

Deno.test("UdpSessionTable.delete() removes only the stored session, also while iterating", () => {
  const table = new UdpSessionTable<ReturnType<typeof session>>();
  const a = session("127.0.0.1", 1000);
  table.add(a);
  table.delete(session("127.0.0.1", 1000));
  assert.equal(table.size, 1, "an equal but different session is not removed");
  table.add(session("10.0.0.1", 1));
  for (const s of table) table.delete(s);
  assert.equal(table.size, 0);
  assert.deepEqual([...table], []);
});
