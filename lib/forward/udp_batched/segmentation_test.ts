import assert from "node:assert/strict";
import { startUdpEcho } from "../../../tests/_support/net_udp.ts";
import { udpForwarderTo } from "../../../tests/_support/udp_engines.ts";
import { checksum, generatedDatagram, sendBurst } from "../../../tests/_support/udp_traffic.ts";

Deno.test("batched engine: bursts of equal-size datagrams leave in segmented runs, whole and in order", async () => {
  await using echo = startUdpEcho();
  await using fx = await udpForwarderTo("batched", echo.port);
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    let sent = 0;
    for (let burst = 0; burst < 20; burst++) {
      const datagrams = Array.from(
        { length: 32 },
        (_, k) => generatedDatagram(0, sent + k, k === 31 ? 700 : 1200),
      );
      sent += datagrams.length;
      const replies = await sendBurst(socket, datagrams, fx.forwarder.port);
      assert.deepEqual(replies, datagrams.map((datagram) => checksum(datagram)));
    }
    assert.equal(fx.counters.datagramsClientToTarget, sent);
    assert.equal(fx.counters.datagramsTargetToClient, sent);
    assert.ok(fx.counters.segmentedDatagrams > 0, "some runs were segmented");
  } finally {
    socket.close();
  }
});
