/**
 * The servers behind every forwarder: iperf3 (TCP bulk sink), and the C echo servers (TCP and UDP).
 * Started once per benchmark run.
 * @module
 */
import type { ForwardPorts } from "./peer_configs.ts";
import { LOOPBACK } from "./peer_configs.ts";
import { freePort, waitTcp } from "./peers.ts";
import type { ManagedProcess, ProcessGroup } from "./processes.ts";
import type { Tools } from "./toolchain.ts";

const READY_TIMEOUT_MS = 10_000;

/** The running targets; `restartIperf()` recovers a wedged iperf3 server on the same port. */
export class Targets {
  readonly ports: ForwardPorts;
  readonly #group: ProcessGroup;
  readonly #tools: Tools;
  #iperf: ManagedProcess;
  readonly #echo: ManagedProcess[];

  private constructor(
    group: ProcessGroup,
    tools: Tools,
    ports: ForwardPorts,
    iperf: ManagedProcess,
    echo: ManagedProcess[],
  ) {
    this.#group = group;
    this.#tools = tools;
    this.ports = ports;
    this.#iperf = iperf;
    this.#echo = echo;
  }

  /** Starts all targets and waits until they serve. */
  static async start(group: ProcessGroup, tools: Tools): Promise<Targets> {
    const echo = (transport: "tcp" | "udp") =>
      group.spawn(`echo-${transport}`, tools.echoServer, [transport, "0"], { stdout: true });
    const tcp = echo("tcp");
    const udp = echo("udp");
    const port = async (p: ManagedProcess) =>
      Number((await p.readLine(READY_TIMEOUT_MS)).split(" ")[1]);
    const bulk = freePort("tcp");
    const iperf = Targets.#startIperf(group, tools, bulk);
    const targets = new Targets(
      group,
      tools,
      { bulk, echo: await port(tcp), udp: await port(udp) },
      iperf,
      [
        tcp,
        udp,
      ],
    );
    await waitTcp(bulk, "iperf3 server");
    return targets;
  }

  static #startIperf(group: ProcessGroup, tools: Tools, port: number): ManagedProcess {
    return group.spawn("iperf3-server", tools.iperf3, ["-s", "-B", LOOPBACK, "-p", String(port)]);
  }

  /** Replaces the iperf3 server (after a failed test left it busy). */
  async restartIperf(): Promise<void> {
    await this.#group.stop(this.#iperf);
    this.#iperf = Targets.#startIperf(this.#group, this.#tools, this.ports.bulk);
    await waitTcp(this.ports.bulk, "iperf3 server");
  }

  /** The UDP echo server's process id. */
  get udpEchoPid(): number {
    return this.#echo[1]!.pid;
  }

  /** Stops every target. */
  async stop(): Promise<void> {
    await Promise.all([this.#iperf, ...this.#echo].map((p) => this.#group.stop(p)));
  }
}
