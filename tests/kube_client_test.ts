// The typed Kubernetes client against a real kube-apiserver + etcd.
import assert from "node:assert/strict";
import type { Service } from "kubernetes-types/core/v1.d.ts";
import type { ClusterRole } from "kubernetes-types/rbac/v1.d.ts";
import { ApiError } from "../lib/kube/api_error.ts";
import { defineResource, NAMESPACES, SERVICES, UNDYING_PROXIES } from "../lib/kube/resources.ts";
import { integrationTest } from "./_support/control_plane.ts";
import { clientFor, moveListenPort, undyingProxy } from "./_support/kube_clients.ts";

const CLUSTER_ROLES = defineResource<ClusterRole>({
  group: "rbac.authorization.k8s.io",
  version: "v1",
  plural: "clusterroles",
  kind: "ClusterRole",
  namespaced: false,
});

function service(namespace: string, name: string, ports: number[]): Service {
  return {
    metadata: { namespace, name },
    spec: { ports: ports.map((port) => ({ name: `p${port}`, port, protocol: "TCP" })) },
  };
}

function portsOf(object: Service): number[] {
  return (object.spec?.ports ?? []).map((p) => p.port).sort((a, b) => a - b);
}

async function rejectsWith(
  promise: Promise<unknown>,
  kind: string,
  status: number,
): Promise<ApiError> {
  const error = await promise.then(() => undefined, (e) => e);
  assert.ok(error instanceof ApiError, `expected an ApiError ${kind}, got ${error}`);
  assert.equal(error.kind, kind, error.message);
  assert.equal(error.status, status, error.message);
  return error;
}

integrationTest("KubeClient: Service create, get, list, patch, delete", async (cp) => {
  using client = await clientFor(cp.adminKubeconfigPath);
  const ns = await cp.createNamespace("svc-crud");
  const created = await client.create(SERVICES, service(ns, "web", [80]));
  assert.equal(created.kind, "Service");
  assert.ok(created.spec?.clusterIP, "the API server allocated a cluster IP");
  const got = await client.get(SERVICES, "web", { namespace: ns });
  assert.equal(got.metadata?.uid, created.metadata?.uid);
  const listed = await client.list(SERVICES, { namespace: ns });
  assert.deepEqual(listed.items.map((s) => s.metadata?.name), ["web"]);
  assert.equal(listed.items[0]?.kind, "Service", "list items get their kind filled in");
  assert.ok(listed.resourceVersion !== "");

  const patched = await client.patch(SERVICES, {
    name: "web",
    type: "merge",
    patch: {
      spec: { ports: [{ name: "p81", port: 81, protocol: "TCP" }] },
    },
    namespace: ns,
  });
  assert.deepEqual(portsOf(patched), [81]);
  assert.deepEqual(
    JSON.parse(await cp.kubectlOk(["get", "svc", "web", "-n", ns, "-o", "json"])).spec.ports[0]
      .port,
    81,
  );

  await client.delete(SERVICES, "web", { namespace: ns });
  const missing = await rejectsWith(
    client.get(SERVICES, "web", { namespace: ns }),
    "NotFound",
    404,
  );
  assert.match(missing.message, /services "web" not found/);
  // Cluster-scoped resources work too.
  const namespace = await client.get(NAMESPACES, ns);
  assert.equal(namespace.metadata?.name, ns);
});

integrationTest("KubeClient: cluster-scoped create, list, patch, delete", async (cp) => {
  using client = await clientFor(cp.adminKubeconfigPath);
  const name = `undying-proxy-test-${crypto.randomUUID().slice(0, 8)}`;
  const labelSelector = `test=${name}`;
  const rule = { apiGroups: [""], resources: ["services"], verbs: ["get"] };
  const created = await client.create(CLUSTER_ROLES, {
    metadata: { name, labels: { test: name } },
    rules: [rule],
  });
  assert.equal(created.metadata?.namespace, undefined);
  const listed = await client.list(CLUSTER_ROLES, { labelSelector });
  assert.deepEqual(listed.items.map((r) => [r.kind, r.metadata?.name]), [["ClusterRole", name]]);
  const patched = await client.patch(CLUSTER_ROLES, {
    name,
    type: "merge",
    patch: {
      rules: [{ ...rule, verbs: ["get", "list"] }],
    },
  });
  assert.deepEqual(patched.rules?.[0]?.verbs, ["get", "list"]);
  const emptied = await client.patch(CLUSTER_ROLES, {
    name,
    type: "json",
    patch: [
      { op: "replace", path: "/rules", value: [] },
    ],
  });
  assert.deepEqual(emptied.rules ?? [], []);
  assert.match(
    await cp.kubectlOk(["get", "clusterrole", name, "-o", "jsonpath={.metadata.name}"]),
    new RegExp(`^${name}$`),
  );
  await client.delete(CLUSTER_ROLES, name);
  await rejectsWith(client.get(CLUSTER_ROLES, name), "NotFound", 404);
});

integrationTest("KubeClient: every patch type on a Service's ports", async (cp) => {
  using client = await clientFor(cp.adminKubeconfigPath);
  const ns = await cp.createNamespace("svc-patch");
  await client.create(SERVICES, service(ns, "web", [80]));
  const at = { namespace: ns };

  const jsonPatched = await client.patch(SERVICES, {
    name: "web",
    type: "json",
    patch: [
      { op: "add", path: "/spec/ports/-", value: { name: "p81", port: 81, protocol: "TCP" } },
    ],
    ...at,
  });
  assert.deepEqual(portsOf(jsonPatched), [80, 81]);

  const mergePatched = await client.patch(SERVICES, {
    name: "web",
    type: "merge",
    patch: {
      spec: { ports: [{ name: "p82", port: 82, protocol: "TCP" }] },
    },
    ...at,
  });
  assert.deepEqual(portsOf(mergePatched), [82], "a merge patch replaces the whole list");

  const applied = await client.apply(SERVICES, {
    metadata: { namespace: ns, name: "web" },
    spec: { ports: [{ name: "p84", port: 84, protocol: "TCP" }] },
  }, { fieldManager: "tester-a" });
  assert.deepEqual(portsOf(applied), [82, 84], "apply adds its own port to the list map");
  assert.ok(applied.metadata?.managedFields?.some((f) => f.manager === "tester-a"));

  const conflicting = {
    metadata: { namespace: ns, name: "web" },
    spec: { ports: [{ name: "other", port: 84, protocol: "TCP" as const }] },
  };
  const conflict = await rejectsWith(
    client.apply(SERVICES, conflicting, { fieldManager: "tester-b" }),
    "Conflict",
    409,
  );
  assert.match(conflict.message, /tester-a/);
  const forced = await client.apply(SERVICES, conflicting, {
    fieldManager: "tester-b",
    force: true,
  });
  assert.equal(forced.spec?.ports?.find((p) => p.port === 84)?.name, "other");
});

integrationTest(
  "KubeClient: UnDyingProxy CRUD, paginated list and status subresource",
  async (cp) => {
    using client = await clientFor(cp.adminKubeconfigPath);
    const ns = await cp.createNamespace("udp-crud");
    for (let i = 0; i < 5; i++) {
      await client.create(
        UNDYING_PROXIES,
        undyingProxy(ns, `p${i}`, 7000 + i),
      );
    }

    const pages = [];
    for await (const page of client.listPages(UNDYING_PROXIES, { namespace: ns, limit: 2 })) {
      pages
        .push(page);
    }
    assert.deepEqual(pages.map((p) => p.items.length), [2, 2, 1]);
    const all = await client.list(UNDYING_PROXIES, { namespace: ns, limit: 2 });
    assert.deepEqual(all.items.map((p) => p.metadata?.name), ["p0", "p1", "p2", "p3", "p4"]);
    assert.equal(all.items[0]?.apiVersion, "proxy.sfact.io/v1alpha1");

    const p0 = await client.get(UNDYING_PROXIES, "p0", { namespace: ns });
    const moved = await moveListenPort(client, p0, 7100);
    assert.equal(moved.metadata?.generation, 2);

    // Status goes only through the subresource; the main resource ignores status changes.
    const withStatus = await client.patch(UNDYING_PROXIES, {
      name: "p0",
      type: "merge",
      patch: {
        status: { ready: true, listening: "1/1" },
      },
      namespace: ns,
      subresource: "status",
    });
    assert.deepEqual(withStatus.status, { ready: true, listening: "1/1" });
    assert.equal(withStatus.metadata?.generation, 2, "a status write does not bump generation");
    const patched = await client.patch(UNDYING_PROXIES, {
      name: "p0",
      type: "merge",
      patch: {
        status: { listening: "0/1", ready: false },
      },
      namespace: ns,
      subresource: "status",
    });
    assert.deepEqual(patched.status, { ready: false, listening: "0/1" });
    const applied = await client.apply(UNDYING_PROXIES, {
      metadata: { namespace: ns, name: "p0" },
      status: { observedGeneration: 2, target: "example.org:9001" },
    }, { fieldManager: "replica-1", subresource: "status", force: true });
    assert.deepEqual(applied.status, {
      ready: false,
      listening: "0/1",
      observedGeneration: 2,
      target: "example.org:9001",
    });
    const statusRead = await client.get(UNDYING_PROXIES, "p0", {
      namespace: ns,
      subresource: "status",
    });
    assert.deepEqual(statusRead.status, applied.status);
    const specWrite = await client.patch(UNDYING_PROXIES, {
      name: "p0",
      type: "merge",
      patch: {
        status: { ready: true },
      },
      namespace: ns,
    });
    assert.deepEqual(specWrite.status, applied.status, "the main resource ignores status");

    await client.delete(UNDYING_PROXIES, "p1", { namespace: ns });
    const after = await client.list(UNDYING_PROXIES, { namespace: ns });
    assert.deepEqual(after.items.map((p) => p.metadata?.name), ["p0", "p2", "p3", "p4"]);
  },
);

integrationTest(
  "KubeClient: a stale resourceVersion gets 409 Conflict; duplicates AlreadyExists",
  async (cp) => {
    using client = await clientFor(cp.adminKubeconfigPath);
    const ns = await cp.createNamespace("conflict");
    const created = await client.create(UNDYING_PROXIES, undyingProxy(ns, "p", 7000));
    await moveListenPort(client, created, 7001);
    const stale = await rejectsWith(
      moveListenPort(client, created, 7002),
      "Conflict",
      409,
    );
    assert.equal(stale.reason, "Conflict");
    assert.match(stale.message, /the object has been modified/);
    const duplicate = await rejectsWith(
      client.create(UNDYING_PROXIES, undyingProxy(ns, "p", 7000)),
      "AlreadyExists",
      409,
    );
    assert.match(duplicate.message, /already exists/);
  },
);

integrationTest("KubeClient: schema violations are Invalid with field causes", async (cp) => {
  using client = await clientFor(cp.adminKubeconfigPath);
  const ns = await cp.createNamespace("invalid");
  const error = await rejectsWith(
    client.create(UNDYING_PROXIES, undyingProxy(ns, "bad", 70000)),
    "Invalid",
    422,
  );
  assert.ok(
    error.causes.some((c) => c.field === "spec.tcp.listenPort"),
    `causes: ${JSON.stringify(error.causes)}`,
  );
  assert.match(error.message, /spec\.tcp\.listenPort/);
});

integrationTest(
  "KubeClient: a token without rights gets Forbidden naming verb and resource",
  async (cp) => {
    const ns = await cp.createNamespace("forbidden");
    using client = await clientFor(await cp.kubeconfigForServiceAccount(ns, "nobody"));
    const listError = await rejectsWith(client.list(SERVICES, { namespace: ns }), "Forbidden", 403);
    assert.match(
      listError.message,
      new RegExp(`system:serviceaccount:${ns}:nobody.*cannot list resource "services"`),
    );
    const createError = await rejectsWith(
      client.create(UNDYING_PROXIES, undyingProxy(ns, "p", 7000)),
      "Forbidden",
      403,
    );
    assert.match(
      createError.message,
      /cannot create resource "undyingproxies" in API group "proxy.sfact.io"/,
    );
  },
);
