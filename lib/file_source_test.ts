import assert from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { ConfigError, FileSource, parseConfig } from "./file_source.ts";
import type { ForwarderSpec } from "./spec.ts";
import { waitUntil } from "../tests/_support/wait.ts";

const TCP_DOC = `
apiVersion: proxy.sfact.io/v1alpha1
kind: UnDyingProxy
metadata:
  name: web
spec:
  tcp: { listenPort: 8000, targetHost: 127.0.0.1, targetPort: 80 }
`;
const UDP_DOC = `
apiVersion: proxy.sfact.io/v1alpha1
kind: UnDyingProxy
metadata:
  name: dns
  namespace: infra
spec:
  udp: { listenPort: 5353, targetHost: ::1, targetPort: 53 }
`;

function configError(text: string): ConfigError {
  try {
    parseConfig("c.yaml", text);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error;
  }
  return assert.fail("accepted");
}

Deno.test("parseConfig() reads every UnDyingProxy document, skipping empty ones", () => {
  const specs = parseConfig("c.yaml", `---\n${TCP_DOC}\n---\n---\n${UDP_DOC}`);
  assert.deepEqual(specs, [
    { name: "default/web", tcp: { listenPort: 8000, targetHost: "127.0.0.1", targetPort: 80 } },
    {
      name: "infra/dns",
      udp: {
        listenPort: 5353,
        targetHost: "::1",
        targetPort: 53,
        readTimeoutSeconds: 30,
        writeTimeoutSeconds: 5,
      },
    },
  ]);
  assert.deepEqual(parseConfig("c.yaml", ""), []);
});

Deno.test("parseConfig() names document, object, field and value of every problem", () => {
  const error = configError(
    `${TCP_DOC}---${UDP_DOC.replace("5353", "70000").replace("UnDyingProxy", "Proxy")}`,
  );
  assert.deepEqual(
    error.problems.map((p) => [p.document, p.field, p.value]),
    [[2, "kind", "Proxy"], [2, "spec.udp.listenPort", 70000]],
  );
  assert.match(
    error.message,
    /^Invalid config file c\.yaml: document 2: kind = "Proxy": must be UnDyingProxy; /,
  );
  assert.match(
    error.message,
    /document 2 \(infra\/dns\): spec\.udp\.listenPort = 70000: must be an integer/,
  );
});

Deno.test("parseConfig() rejects duplicate names, bad metadata and YAML errors", () => {
  assert.match(
    configError(`${TCP_DOC}---${TCP_DOC}`).message,
    /document 2 \(default\/web\): metadata\.name = "default\/web": duplicate of document 1/,
  );
  assert.match(
    configError(TCP_DOC.replace("name: web", "name: Web_1")).message,
    /metadata\.name = "Web_1"/,
  );
  assert.match(
    configError(TCP_DOC.replace("kind:", "sepc: 1\nkind:")).message,
    /sepc = 1: unknown field/,
  );
  assert.match(
    configError("- a\n- b").message,
    /document 1: \(document\) = \["a","b"\]: must be an object/,
  );
  assert.match(
    configError("a: [").message,
    /document 1, line 1, column 4: YAML syntax: this "\[" is never closed/,
  );
});

Deno.test("parseConfig() says a missing field is missing, and where a YAML error is, plainly", () => {
  const missing = configError(UDP_DOC.replace("targetHost: ::1, ", ""));
  assert.match(
    missing.message,
    /document 1 \(infra\/dns\): spec\.udp\.targetHost: missing \(a DNS name or an IP address\)$/,
  );
  assert.doesNotMatch(missing.message, /undefined|required/);
  assert.match(
    configError("kind: UnDyingProxy\nmetadata: {}\n").message,
    /document 1: apiVersion: missing \(must be proxy\.sfact\.io\/v1alpha1\); document 1: metadata\.name: missing \(must be a Kubernetes object name/,
  );
  // The user's case: a "{" left open; the parser only notices at the next line.
  const unclosed = configError(TCP_DOC.replace("targetPort: 80 }", "targetPort: 80\nstatus: {}"));
  assert.deepEqual(
    unclosed.problems.map((p) => [p.document, p.line, p.column, p.field]),
    [[1, 7, 8, "YAML syntax"]],
  );
  assert.equal(
    unclosed.message,
    'Invalid config file c.yaml: document 1, line 7, column 8: YAML syntax: this "{" is never ' +
      'closed: add "}" at the end of the value',
  );
  assert.doesNotMatch(unclosed.message, /YAMLException|deficient/);
});

Deno.test("parseConfig() numbers the document of a YAML syntax error as it numbers the others", () => {
  const cases: [string, number][] = [
    ["kind: [", 1],
    [`${TCP_DOC}---\nkind: [\n`, 2],
    [`# comment\n---\n${TCP_DOC}---\n---\nkind: [\n`, 3],
    [`${TCP_DOC}...\n---\nkind: [\n`, 2],
  ];
  for (const [text, document] of cases) {
    const syntax = configError(text);
    assert.deepEqual(syntax.problems.map((p) => [p.document, p.field]), [
      [document, "YAML syntax"],
    ]);
    assert.match(
      syntax.message,
      new RegExp(`: document ${document}, line \\d+, column \\d+: YAML`),
    );
    // The same stream, valid YAML with a wrong kind there: the same document number.
    const schema = configError(text.replace("kind: [", "kind: Nope"));
    assert.equal(schema.problems.find((p) => p.field === "kind")?.document, document, text);
  }
});

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "file_source_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs a FileSource on `path`, recording what it applies and the load results. */
async function watching(
  path: string,
  fn: (applied: (readonly ForwarderSpec[])[], loads: string[]) => Promise<void>,
): Promise<void> {
  const applied: (readonly ForwarderSpec[])[] = [];
  const loads: string[] = [];
  const source = await FileSource.open(path, { debounceMs: 50, onLoad: (r) => loads.push(r) });
  const stop = new AbortController();
  const done = source.run((desired) => applied.push(desired), stop.signal);
  try {
    await fn(applied, loads);
  } finally {
    stop.abort();
    await done;
  }
}

const names = (specs: readonly ForwarderSpec[] | undefined) => specs?.map((s) => s.name);

Deno.test("FileSource applies the file, then every valid change, keeping the last good set", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/proxies.yaml`;
    await Deno.writeTextFile(path, TCP_DOC);
    await watching(path, async (applied, loads) => {
      assert.deepEqual(names(applied[0]), ["default/web"]);
      // Edited in place.
      await Deno.writeTextFile(path, `${TCP_DOC}---${UDP_DOC}`);
      await waitUntil("the edit to apply", () => applied.length === 2);
      assert.deepEqual(names(applied[1]), ["default/web", "infra/dns"]);
      // Broken: rejected, nothing applied, failure recorded.
      await Deno.writeTextFile(path, `${TCP_DOC}---${TCP_DOC}`);
      await waitUntil("the failure", () => loads.includes("failure"));
      // Replaced by rename, as editors do.
      await Deno.writeTextFile(`${dir}/.proxies.yaml.swp`, UDP_DOC);
      await Deno.rename(`${dir}/.proxies.yaml.swp`, path);
      await waitUntil("the replaced file", () => applied.length === 3);
      assert.deepEqual(names(applied[2]), ["infra/dns"]);
      assert.deepEqual(loads, ["success", "success", "failure", "success"]);
    });
  });
});

Deno.test("FileSource counts a file deleted and restored unchanged as a failed, then a good load", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/proxies.yaml`;
    await Deno.writeTextFile(path, TCP_DOC);
    await watching(path, async (applied, loads) => {
      await Deno.remove(path);
      await waitUntil("the failed read", () => loads.at(-1) === "failure");
      await Deno.writeTextFile(path, TCP_DOC);
      await waitUntil("the good load", () => loads.at(-1) === "success");
      assert.deepEqual(loads, ["success", "failure", "success"]);
      assert.equal(applied.length, 1, "nothing changed: nothing applied again");
      // Unchanged and valid again: a later read of the same text records nothing more.
      await Deno.writeTextFile(path, TCP_DOC);
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.deepEqual(loads, ["success", "failure", "success"]);
    });
  });
});

Deno.test("FileSource logs the names each reload adds, changes and removes", async () => {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { test: (record) => records.push(record) },
    loggers: [
      { category: ["undying-proxy", "config"], lowestLevel: "info", sinks: ["test"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
  });
  try {
    await withTempDir(async (dir) => {
      const path = `${dir}/proxies.yaml`;
      await Deno.writeTextFile(path, `${TCP_DOC}---${UDP_DOC}`);
      await watching(path, async (applied) => {
        // web retargeted, dns removed, a new one added.
        const added = TCP_DOC.replace("name: web", "name: new");
        await Deno.writeTextFile(
          path,
          `${TCP_DOC.replace("targetPort: 80", "targetPort: 81")}---${added}`,
        );
        await waitUntil("the reload", () => applied.length === 2);
      });
    });
  } finally {
    await reset();
  }
  const reload = records.find((record) => String(record.message[0]).startsWith("Reloaded"));
  assert.ok(reload, "a reload record");
  assert.deepEqual(
    [reload.properties["added"], reload.properties["changed"], reload.properties["removed"]],
    [["default/new"], ["default/web"], ["infra/dns"]],
  );
});

Deno.test("FileSource follows a ConfigMap-style symlink swap", async () => {
  await withTempDir(async (dir) => {
    // Kubernetes mounts: proxies.yaml -> ..data/proxies.yaml, ..data -> ..<timestamp>/, swapped by rename.
    await Deno.mkdir(`${dir}/..v1`);
    await Deno.writeTextFile(`${dir}/..v1/proxies.yaml`, TCP_DOC);
    await Deno.symlink("..v1", `${dir}/..data`);
    await Deno.symlink("..data/proxies.yaml", `${dir}/proxies.yaml`);
    await watching(`${dir}/proxies.yaml`, async (applied) => {
      assert.deepEqual(names(applied[0]), ["default/web"]);
      await Deno.mkdir(`${dir}/..v2`);
      await Deno.writeTextFile(`${dir}/..v2/proxies.yaml`, UDP_DOC);
      await Deno.symlink("..v2", `${dir}/..data_tmp`);
      await Deno.rename(`${dir}/..data_tmp`, `${dir}/..data`);
      await Deno.remove(`${dir}/..v1`, { recursive: true });
      await waitUntil("the swapped config", () => applied.length === 2);
      assert.deepEqual(names(applied[1]), ["infra/dns"]);
    });
  });
});

Deno.test("FileSource.open() rejects a missing or invalid file", async () => {
  await withTempDir(async (dir) => {
    const loads: string[] = [];
    await assert.rejects(
      FileSource.open(`${dir}/none.yaml`, { onLoad: (r) => loads.push(r) }),
      (error: unknown) =>
        error instanceof ConfigError && /none\.yaml.*cannot be read/.test(error.message),
    );
    await Deno.writeTextFile(`${dir}/bad.yaml`, "kind: Nope");
    await assert.rejects(FileSource.open(`${dir}/bad.yaml`), ConfigError);
    assert.deepEqual(loads, ["failure"]);
  });
});

Deno.test("parseConfig() accepts every UnDyingProxy sample under k8s/samples/", async () => {
  const dir = new URL("../k8s/samples/", import.meta.url);
  let checked = 0;
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.name.endsWith(".yaml") || entry.name === "kustomization.yaml") continue;
    const specs = parseConfig(entry.name, await Deno.readTextFile(new URL(entry.name, dir)));
    assert.ok(specs.length > 0, entry.name);
    checked++;
  }
  assert.ok(checked >= 2, "samples found");
});
