import assert from "node:assert/strict";
import type { AbiLayout } from "./abi_layout.ts";
import { currentLayout } from "./layout.ts";
import { LAYOUT_AARCH64 } from "./layout_aarch64.ts";
import { LAYOUT_X86_64 } from "./layout_x86_64.ts";

Deno.test("epoll_event is 12 bytes packed on x86-64 and 16 aligned on aarch64", () => {
  assert.deepEqual(LAYOUT_X86_64.epollEvent, { size: 12, events: 0, data: 4 });
  assert.deepEqual(LAYOUT_AARCH64.epollEvent, { size: 16, events: 0, data: 8 });
});

for (const layout of [LAYOUT_X86_64, LAYOUT_AARCH64]) {
  Deno.test(`${layout.arch} layout: every field inside its struct, pointers 8-byte aligned`, () => {
    const { mmsghdr, iovec, sockaddr } = layout;
    for (const at of [mmsghdr.name, mmsghdr.iov, mmsghdr.control, iovec.base]) {
      assert.equal(at % 8, 0);
    }
    assert.ok(mmsghdr.len + 4 <= mmsghdr.size && mmsghdr.flags + 4 <= mmsghdr.len);
    assert.ok(iovec.len + 8 <= iovec.size);
    assert.ok(
      sockaddr.in6Addr + 16 <= sockaddr.in6Size && sockaddr.in4Addr + 4 <= sockaddr.in4Size,
    );
    assert.equal(layout.maxSockaddrSize, sockaddr.in6Size);
  });
}

Deno.test("currentLayout() matches this machine", () => {
  const layout: AbiLayout | undefined = currentLayout();
  assert.equal(layout?.arch, Deno.build.os === "linux" ? Deno.build.arch : undefined);
});
