/**
 * The target of a listener on a native engine (splice TCP, batched UDP), kept on the main thread:
 * the engine threads get addresses, never names. A name is looked up when the listener opens, again
 * every few seconds once its answer is stale, and at once on a new target; the target rules are
 * checked on every answer (a target whose every address is forbidden is published as `"forbidden"`
 * and reported through `onTarget`). What is known is handed to `publish` (the listener writes it to
 * the shared settings of its threads).
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { lookup } from "node:dns/promises";
import { currentLayout } from "../ffi/layout.ts";
import { encodeSockaddr } from "../ffi/sockaddr.ts";
import { ipLiteralFamily } from "../spec.ts";
import { errorMessage } from "../util/error_message.ts";
import { LogThrottle } from "./log_throttle.ts";
import type { ForwarderPolicyOptions } from "./policy/forwarder_policy.ts";
import { TargetForbiddenError, TargetPolicy } from "./policy/target_policy.ts";
import { reportingResolver, type TargetResolver } from "./target_resolver.ts";
import type { EngineTarget } from "./udp_batched/listener_settings.ts";

/** How often a stale target name is looked up again. */
const RERESOLVE_MS = 5000;

/** What the engine threads are told: an address, forbidden, or nothing (the name does not resolve). */
export type PublishedTarget = EngineTarget | "forbidden" | undefined;

/** Options of {@linkcode NativeTarget.open}. */
export interface NativeTargetOptions extends ForwarderPolicyOptions {
  /** Forwarder name and protocol, for logs. */
  readonly name: string;
  readonly protocol: "TCP" | "UDP";
  /** Called with every change after the first answer (which `open` returns). */
  readonly publish: (target: PublishedTarget) => void;
}

/** The resolved target of one native listener. */
export class NativeTarget {
  readonly #options: NativeTargetOptions;
  readonly #log = new LogThrottle();
  readonly #timer: ReturnType<typeof setInterval>;
  #resolver: TargetResolver;
  #current: PublishedTarget;
  #stopped = false;

  /** Resolves `host:port` once (the listener publishes the answer itself) and keeps it fresh. */
  static async open(
    host: string,
    port: number,
    options: NativeTargetOptions,
  ): Promise<NativeTarget> {
    const resolver = newResolver(host, port, options);
    return new NativeTarget(resolver, await answer(resolver, options, undefined), options);
  }

  private constructor(
    resolver: TargetResolver,
    current: PublishedTarget,
    options: NativeTargetOptions,
  ) {
    this.#resolver = resolver;
    this.#current = current;
    this.#options = options;
    this.#timer = setInterval(() => this.#refresh(), RERESOLVE_MS);
  }

  /** The target as last published (or returned by `open`). */
  get current(): PublishedTarget {
    return this.#current;
  }

  /**
   * A new target for new connections or sessions: an IP literal is published at once; until a
   * name's lookup answers (milliseconds), the threads keep the old address.
   */
  retarget(host: string, port: number): void {
    this.#resolver = newResolver(host, port, this.#options);
    const nowMs = Date.now();
    const literal = this.#resolver.cached(nowMs);
    if (literal === undefined && this.#resolver.forbidden(nowMs) === undefined) {
      this.#current = undefined;
      this.#refresh();
      return;
    }
    this.#current = literal === undefined
      ? "forbidden"
      : engineTarget(literal.addr.hostname, literal.addr.port);
    this.#options.publish(this.#current);
  }

  /** No more lookups or publications. */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }

  #refresh(): void {
    if (this.#stopped) return;
    const resolver = this.#resolver;
    const nowMs = Date.now();
    const fresh = resolver.cached(nowMs) ?? resolver.forbidden(nowMs);
    if (fresh !== undefined && this.#current !== undefined) return;
    answer(resolver, this.#options, this.#log).then((target) => {
      if (resolver !== this.#resolver || this.#stopped) return;
      // A failed lookup keeps the last good address of this name.
      if (target === undefined && this.#current !== undefined) return;
      this.#current = target;
      this.#options.publish(target);
    });
  }
}

/** `hostname:port` (an IP literal) as the engine threads take it. */
export function engineTarget(hostname: string, port: number): EngineTarget {
  const layout = currentLayout();
  if (layout === undefined) throw new Error("Native engines need Linux on x86-64/aarch64");
  return {
    sockaddr: encodeSockaddr(layout, hostname, port),
    family: hostname.includes(":") ? 6 : 4,
  };
}

/** The IP literal to bind: `address` itself, or what its name resolves to. */
export async function listenHostname(address: string): Promise<string> {
  if (ipLiteralFamily(address) !== 0) return address;
  try {
    return (await lookup(address)).address;
  } catch (error) {
    // The message the portable engines' lookup errors carry, so both count ResolveListenAddress.
    const reason = errorMessage(error);
    throw new Error(`failed to lookup address information: ${reason}`);
  }
}

/** A resolver that checks the target rules and reports their verdict. */
function newResolver(host: string, port: number, options: ForwarderPolicyOptions): TargetResolver {
  return reportingResolver(host, port, {
    policy: options.policy ?? TargetPolicy.ALLOW_ALL,
    ...(options.onTarget && { onTarget: options.onTarget }),
  }).resolver;
}

/**
 * The target, `"forbidden"` when the rules allow none of its addresses, or undefined (logged, at
 * most as often as `throttle` lets) when its name does not resolve.
 */
async function answer(
  resolver: TargetResolver,
  options: NativeTargetOptions,
  throttle: LogThrottle | undefined,
): Promise<PublishedTarget> {
  try {
    const { addr } = await resolver.resolve();
    return engineTarget(addr.hostname, addr.port);
  } catch (error) {
    if (error instanceof TargetForbiddenError) return "forbidden";
    const suppressed = throttle === undefined ? 0 : throttle.take();
    if (suppressed !== undefined) {
      getLogger(["undying-proxy", options.protocol.toLowerCase()]).warn(
        "Cannot resolve the {protocol} target of {forwarder}: {error}",
        {
          protocol: options.protocol,
          forwarder: options.name,
          error,
          suppressed,
        },
      );
    }
    return undefined;
  }
}
