/**
 * Renders the project's kustomizations (`k8s/...`) with real `kubectl kustomize`, optionally
 * through a temporary overlay that moves everything into another namespace or adds components,
 * and parses the result into objects.
 * @module
 */

import { load, loadAll } from "js-yaml";
import { relative } from "node:path";

/** The repository root. */
export const repoRoot: string = new URL("../../", import.meta.url).pathname;

/** A rendered Kubernetes object (only the fields every object has are typed). */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

/** Options of {@linkcode renderKustomization}. */
export interface RenderOptions {
  /** Set through an overlay's `namespace:` (kustomize also renames the Namespace object). */
  readonly namespace?: string;
  /** Kustomize components (paths from the repository root) the overlay adds. */
  readonly components?: readonly string[];
  /** The overlay's `patches:` entries, as in a kustomization (e.g. a JSON 6902 patch and target). */
  readonly patches?: readonly Record<string, unknown>[];
}

/**
 * Runs `kubectl kustomize` on `path` (relative to the repository root) and returns the YAML.
 * @throws Error with kubectl's stderr when rendering fails
 */
export async function renderKustomization(
  path: string,
  options: RenderOptions = {},
): Promise<string> {
  if (Object.values(options).every((value) => value === undefined)) {
    return await kubectlKustomize(`${repoRoot}${path}`);
  }
  const overlay = await Deno.makeTempDir({ prefix: "undying-proxy-overlay-" });
  try {
    // kustomize refuses absolute paths to bases: refer to them relative to the overlay.
    const from = (target: string) => relative(overlay, `${repoRoot}${target}`);
    const kustomization = {
      apiVersion: "kustomize.config.k8s.io/v1beta1",
      kind: "Kustomization",
      resources: [from(path)],
      ...(options.namespace !== undefined && { namespace: options.namespace }),
      ...(options.components !== undefined && { components: options.components.map(from) }),
      ...(options.patches !== undefined && { patches: options.patches }),
    };
    await Deno.writeTextFile(`${overlay}/kustomization.yaml`, JSON.stringify(kustomization));
    return await kubectlKustomize(overlay);
  } finally {
    await Deno.remove(overlay, { recursive: true });
  }
}

async function kubectlKustomize(dir: string): Promise<string> {
  const output = await new Deno.Command("kubectl", {
    args: ["kustomize", dir],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  if (output.code !== 0) {
    throw new Error(`kubectl kustomize ${dir} failed: ${decoder.decode(output.stderr)}`);
  }
  return decoder.decode(output.stdout);
}

/** Parses a multi-document YAML stream of Kubernetes objects, skipping empty documents. */
export function parseManifests(yaml: string): Manifest[] {
  return loadAll(yaml).filter((doc) => doc !== null && doc !== undefined).map((doc) => {
    const object = doc as Partial<Manifest>;
    if (typeof object.kind !== "string" || typeof object.metadata?.name !== "string") {
      throw new TypeError(`Not a Kubernetes object: ${JSON.stringify(doc).slice(0, 200)}`);
    }
    return object as Manifest;
  });
}

/** Reads one YAML document (e.g. a sample) from a path relative to the repository root. */
export async function readManifest(path: string): Promise<Manifest> {
  const [object] = parseManifests(await Deno.readTextFile(`${repoRoot}${path}`));
  if (!object) throw new TypeError(`${path} holds no Kubernetes object`);
  return object;
}

/** The one object of `kind` named `name`, typed by the caller, or an Error listing what exists. */
export function findManifest<T>(objects: readonly Manifest[], kind: string, name: string): T {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) {
    const names = objects.map((o) => `${o.kind}/${o.metadata.name}`).join(", ");
    throw new Error(`No ${kind}/${name} among: ${names}`);
  }
  return found as unknown as T;
}

/** The project's version (deno.json), which is also the image tag the manifests ship. */
export async function projectVersion(): Promise<string> {
  const config = load(await Deno.readTextFile(`${repoRoot}deno.json`)) as { version: string };
  return config.version;
}
