// The list-then-watch Reflector against a real kube-apiserver: event order, API server restarts and
// 410 Gone after etcd compaction.
import assert from "node:assert/strict";
import { sleep } from "../lib/util/abortable_delay.ts";
import type { KubeClient } from "../lib/kube/client.ts";
import { type CustomObject, UNDYING_PROXIES } from "../lib/kube/resources.ts";
import { Reflector, type ReflectorEvent } from "../lib/kube/reflector.ts";
import {
  type ControlPlane,
  controlPlaneTest,
  integrationTest,
  startControlPlane,
} from "./_support/control_plane.ts";
import { clientFor, moveListenPort, pullUntil, undyingProxy } from "./_support/kube_clients.ts";
import { waitUntil } from "./_support/wait.ts";

/** A running reflector on UnDyingProxies of `namespace`, pulled by hand so tests can pause it. */
class ReflectorRun implements AsyncDisposable {
  readonly reflector: Reflector<CustomObject>;
  readonly #controller = new AbortController();
  readonly #iterator: AsyncGenerator<ReflectorEvent>;

  constructor(client: KubeClient, namespace: string) {
    this.reflector = new Reflector(client, UNDYING_PROXIES, {
      namespace,
      watchTimeoutSeconds: 60,
      livenessMarginMs: 5_000,
      backoff: { initialMs: 100, maxMs: 1_000 },
    });
    this.#iterator = this.reflector.run(this.#controller.signal);
  }

  /** Pulls events until one satisfies `done`. */
  until(what: string, done: (event: ReflectorEvent) => boolean): Promise<ReflectorEvent[]> {
    return pullUntil(this.#iterator, what, done);
  }

  /** Pulls until `changed` events for every key of `expected` arrived, in that order. */
  async changes(expected: Array<[string, string]>): Promise<ReflectorEvent[]> {
    const seen: Array<[string, string]> = [];
    const events = await this.until(`changes ${JSON.stringify(expected)}`, (event) => {
      if (event.type === "changed") seen.push([event.key, event.eventType]);
      return seen.length >= expected.length;
    });
    assert.deepEqual(seen, expected);
    return events;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#controller.abort();
    // Let the generator see the abort and end; `return()` alone would wait behind a pending read.
    while (!(await this.#iterator.next()).done) { /* drain */ }
  }
}

async function serverState(cp: ControlPlane, namespace: string): Promise<Map<string, string>> {
  const list = JSON.parse(
    await cp.kubectlOk(["get", "undyingproxies", "-n", namespace, "-o", "json"]),
  );
  return new Map(
    list.items.map((item: CustomObject) => [
      `${namespace}/${item.metadata?.name}`,
      item.metadata?.resourceVersion,
    ]),
  );
}

function storeState(reflector: Reflector<CustomObject>): Map<string, string | undefined> {
  return new Map(
    [...reflector.store].map(([key, object]) => [key, object.metadata?.resourceVersion]),
  );
}

integrationTest("Reflector: sees add, modify and delete in order", async (cp) => {
  using client = await clientFor(cp.adminKubeconfigPath);
  const ns = await cp.createNamespace("watch-order");
  await client.create(UNDYING_PROXIES, undyingProxy(ns, "before", 7000));
  await using run = new ReflectorRun(client, ns);
  const [synced] = await run.until("first sync", (e) => e.type === "synced");
  assert.deepEqual(synced, { type: "synced", changedKeys: [`${ns}/before`] });
  assert.ok(run.reflector.isSynced());

  const created = await client.create(UNDYING_PROXIES, undyingProxy(ns, "p", 7001));
  await moveListenPort(client, created, 7002);
  await client.delete(UNDYING_PROXIES, "p", { namespace: ns });
  await client.delete(UNDYING_PROXIES, "before", { namespace: ns });
  await run.changes([
    [`${ns}/p`, "ADDED"],
    [`${ns}/p`, "MODIFIED"],
    [`${ns}/p`, "DELETED"],
    [`${ns}/before`, "DELETED"],
  ]);
  assert.equal(run.reflector.store.size, 0);
});

controlPlaneTest(
  "Reflector: resumes after an API server restart without missing an event",
  async () => {
    await using cp = await startControlPlane();
    using client = await clientFor(cp.adminKubeconfigPath);
    const ns = await cp.createNamespace("watch-restart");
    await using run = new ReflectorRun(client, ns);
    await run.until("first sync", (e) => e.type === "synced");
    const a = await client.create(UNDYING_PROXIES, undyingProxy(ns, "a", 7000));
    await run.changes([[`${ns}/a`, "ADDED"]]);

    // The reflector is paused (nobody pulls) while the API server restarts and objects change, so
    // these changes can only reach it through resuming from its last resourceVersion.
    await cp.restartApiServer();
    await moveListenPort(client, a, 7001);
    await client.create(UNDYING_PROXIES, undyingProxy(ns, "b", 7002));
    await client.delete(UNDYING_PROXIES, "a", { namespace: ns });

    const events = await run.changes([
      [`${ns}/a`, "MODIFIED"],
      [`${ns}/b`, "ADDED"],
      [`${ns}/a`, "DELETED"],
    ]);
    assert.ok(!events.some((e) => e.type === "synced"), "resumed without a re-list");
    assert.deepEqual(storeState(run.reflector), await serverState(cp, ns));
  },
);

controlPlaneTest(
  "Reflector: 410 Gone after etcd compaction re-lists with no lost or duplicated state",
  async () => {
    await using cp = await startControlPlane();
    using client = await clientFor(cp.adminKubeconfigPath);
    const ns = await cp.createNamespace("watch-gone");
    await client.create(UNDYING_PROXIES, undyingProxy(ns, "kept", 7000));
    const changed = await client.create(UNDYING_PROXIES, undyingProxy(ns, "changed", 7001));
    await client.create(UNDYING_PROXIES, undyingProxy(ns, "deleted", 7002));
    await using run = new ReflectorRun(client, ns);
    await run.until("first sync", (e) => e.type === "synced");
    const before = run.reflector.resourceVersion;

    // Paused: the API server goes away, objects change and etcd forgets the history since `before`.
    await cp.stopApiServer();
    await cp.startApiServer();
    await moveListenPort(client, changed, 7003);
    await client.create(UNDYING_PROXIES, undyingProxy(ns, "added", 7004));
    await client.delete(UNDYING_PROXIES, "deleted", { namespace: ns });
    await cp.compactEtcd();

    const events = await run.until("the re-list", (e) => e.type === "synced");
    assert.ok(
      !events.some((e) => e.type === "changed"),
      `no partial events: ${JSON.stringify(events)}`,
    );
    const synced = events.at(-1);
    assert.ok(synced?.type === "synced");
    assert.deepEqual(
      [...synced.changedKeys].sort(),
      [`${ns}/added`, `${ns}/changed`, `${ns}/deleted`],
    );
    assert.ok(run.reflector.isSynced());
    assert.notEqual(run.reflector.resourceVersion, before);
    assert.deepEqual(storeState(run.reflector), await serverState(cp, ns));

    // And it keeps watching from the new list.
    await client.delete(UNDYING_PROXIES, "kept", { namespace: ns });
    await run.changes([[`${ns}/kept`, "DELETED"]]);
  },
);

/** Patches an UnDyingProxy of `namespace` every 300 ms until disposed: the resource's version moves. */
async function keepWriting(client: KubeClient, namespace: string): Promise<AsyncDisposable> {
  await client.create(UNDYING_PROXIES, undyingProxy(namespace, "ticker", 7000));
  const stop = new AbortController();
  const writing = (async () => {
    for (let tick = 0; !stop.signal.aborted; tick++) {
      await client.patch(UNDYING_PROXIES, {
        name: "ticker",
        type: "merge",
        patch: {
          metadata: { labels: { tick: String(tick) } },
        },
        namespace,
        signal: stop.signal,
      }).catch((error) => {
        if (!stop.signal.aborted) throw error;
      });
      await sleep(300, stop.signal).catch(() => {});
    }
  })();
  return {
    async [Symbol.asyncDispose]() {
      stop.abort();
      await writing;
    },
  };
}

controlPlaneTest(
  "watch-cache BOOKMARKs advance the resourceVersion of a quiet watch",
  async () => {
    // Only kube-apiserver's watch cache sends bookmarks, 2 s before a watch's timeoutSeconds (and
    // at the latest every minute), and only with a resourceVersion newer than what the watch has
    // covered: short server timeouts and writes in another namespace make them come within seconds.
    await using cp = await startControlPlane({ watchCache: true });
    using client = await clientFor(cp.adminKubeconfigPath);
    const quiet = await cp.createNamespace("bookmark-quiet");
    await using _writer = await keepWriting(client, await cp.createNamespace("bookmark-busy"));

    // The Reflector moves its resourceVersion with them, without a re-list or a change event.
    const reflector = new Reflector(client, UNDYING_PROXIES, {
      namespace: quiet,
      watchTimeoutSeconds: 5,
      backoff: { initialMs: 100, maxMs: 1_000 },
    });
    const controller = new AbortController();
    const seen: ReflectorEvent[] = [];
    const running = (async () => {
      for await (const event of reflector.run(controller.signal)) seen.push(event);
    })();
    try {
      await waitUntil("the first list", () => reflector.isSynced(), { timeoutMs: 30_000 });
      const listedAt = BigInt(reflector.resourceVersion);
      await waitUntil(
        `the Reflector's resourceVersion to pass ${listedAt}`,
        () => BigInt(reflector.resourceVersion) > listedAt,
        { timeoutMs: 60_000, intervalMs: 200 },
      );
    } finally {
      controller.abort();
      await running;
    }
    assert.deepEqual(seen.map((e) => e.type), ["synced"], JSON.stringify(seen));

    // One watch each way: bookmarks come only when asked for, each newer than the watch's start.
    const watchFromNow = async (allowWatchBookmarks: boolean) => {
      const start = (await client.list(UNDYING_PROXIES, { namespace: quiet })).resourceVersion;
      const events = client.watch(UNDYING_PROXIES, {
        namespace: quiet,
        resourceVersion: start,
        timeoutSeconds: 5,
        allowWatchBookmarks,
      });
      const seen: string[] = [];
      for await (const event of events) {
        const newer = BigInt(event.object.metadata?.resourceVersion ?? "0") > BigInt(start);
        seen.push(`${event.type}${newer ? "" : " (not newer)"}`);
      }
      return seen;
    };
    assert.deepEqual(await watchFromNow(false), [], "no bookmarks unless asked for");
    const bookmarks = await watchFromNow(true);
    assert.ok(bookmarks.length > 0, "a BOOKMARK before the server timeout");
    assert.deepEqual(bookmarks, bookmarks.map(() => "BOOKMARK"));
  },
);
