/**
 * `undying-proxy convert`: prints UnDyingProxy objects for ingress-nginx's `tcp-services` and
 * `udp-services` ConfigMaps, read from manifests as `kubectl get cm NAME -o yaml` (or `-o json`)
 * prints them. Entries it cannot convert go to stderr with the reason.
 *
 * Exit codes: 0 every entry converted, 1 some entries not converted (the others are printed),
 * 2 a bad command line or an unreadable manifest.
 * @module
 */
import { parseArgs } from "node:util";
import { dump, loadAll } from "js-yaml";
import { convertStreamServices, type ServicePorts } from "./convert.ts";

/** Usage of `undying-proxy convert`. */
export const CONVERT_USAGE =
  `Usage: undying-proxy convert [--tcp-services FILE] [--udp-services FILE]
                             [--services FILE] [--namespace NS] [--cluster-domain DOMAIN]

Prints UnDyingProxy objects (YAML) for ingress-nginx's tcp/udp-services ConfigMaps.
  --tcp-services FILE    the tcp-services ConfigMap (kubectl get cm tcp-services -o yaml)
  --udp-services FILE    the udp-services ConfigMap
  --services FILE        Services to resolve named ports (kubectl get svc -A -o yaml)
  --namespace NS         metadata.namespace of every object (default: none; kubectl -n decides)
  --cluster-domain D     the cluster's DNS domain for Service names (default: cluster.local)
Exit code: 0 all converted, 1 some entries not converted (listed on stderr), 2 usage or input error.`;

/** Largest manifest file read (a ConfigMap holds at most 1 MiB; a Service list can be larger). */
const MAX_MANIFEST_BYTES = 8 * 1024 * 1024;

/** An error in the command line or an input file (exit code 2). */
class ConvertUsageError extends Error {
  override name = "ConvertUsageError";
}

/** Output streams (tests capture them). */
export interface ConvertIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

/** Runs `convert` with its arguments (after the word `convert`); returns the exit code. */
export async function runConvert(args: readonly string[], io: ConvertIo): Promise<number> {
  try {
    const { values } = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
        "tcp-services": { type: "string" },
        "udp-services": { type: "string" },
        "services": { type: "string" },
        "namespace": { type: "string" },
        "cluster-domain": { type: "string", default: "cluster.local" },
        "help": { type: "boolean", short: "h" },
      },
    });
    if (values.help) {
      io.stdout(`${CONVERT_USAGE}\n`);
      return 0;
    }
    const tcpPath = values["tcp-services"];
    const udpPath = values["udp-services"];
    if (tcpPath === undefined && udpPath === undefined) {
      throw new ConvertUsageError("give --tcp-services FILE, --udp-services FILE or both");
    }
    const domain = values["cluster-domain"];
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(domain)) {
      throw new ConvertUsageError(`--cluster-domain "${domain}": not a DNS domain`);
    }
    const result = convertStreamServices({
      tcp: tcpPath === undefined ? undefined : await configMapData(tcpPath, "--tcp-services"),
      udp: udpPath === undefined ? undefined : await configMapData(udpPath, "--udp-services"),
      services: values.services === undefined
        ? []
        : (await manifests(values.services, "--services")).filter(isService),
      namespace: values.namespace,
      clusterDomain: domain,
    });
    if (result.objects.length > 0) {
      io.stdout(result.objects.map((o) => dump(o, { lineWidth: -1 })).join("---\n"));
    }
    for (const note of result.notes) io.stderr(`note: ${note}\n`);
    for (const p of result.problems) {
      io.stderr(`not converted: ${p.protocol} ${p.key}: "${p.value}": ${p.reason}\n`);
    }
    io.stderr(
      `converted ${result.objects.length} object(s); ${result.problems.length} entr` +
        `${result.problems.length === 1 ? "y" : "ies"} not converted\n`,
    );
    return result.problems.length > 0 ? 1 : 0;
  } catch (error) {
    if (!(error instanceof ConvertUsageError) && !isParseArgsError(error)) throw error;
    io.stderr(`undying-proxy convert: ${(error as Error).message}\n${CONVERT_USAGE}\n`);
    return 2;
  }
}

/** The `data` of the single ConfigMap in a manifest file. */
async function configMapData(path: string, flag: string): Promise<Record<string, string>> {
  const configMaps = (await manifests(path, flag)).filter((o) => o.kind === "ConfigMap");
  if (configMaps.length !== 1) {
    throw new ConvertUsageError(
      `${flag} ${path}: expected one ConfigMap, found ${configMaps.length}`,
    );
  }
  const data = configMaps[0]!.data ?? {};
  if (!isRecord(data) || !Object.values(data).every((v) => typeof v === "string")) {
    throw new ConvertUsageError(
      `${flag} ${path}: the ConfigMap's data must map strings to strings`,
    );
  }
  return data as Record<string, string>;
}

/** Every object of a YAML or JSON manifest file, `List` items flattened. */
async function manifests(path: string, flag: string): Promise<Record<string, unknown>[]> {
  let text: string;
  try {
    const info = await Deno.stat(path);
    if (info.size > MAX_MANIFEST_BYTES) {
      throw new ConvertUsageError(
        `${flag} ${path}: ${info.size} bytes, more than the ${MAX_MANIFEST_BYTES} read`,
      );
    }
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof ConvertUsageError) throw error;
    throw new ConvertUsageError(`${flag} ${path}: ${(error as Error).message}`);
  }
  let documents: unknown[];
  try {
    documents = loadAll(text);
  } catch (error) {
    throw new ConvertUsageError(`${flag} ${path}: not YAML or JSON: ${(error as Error).message}`);
  }
  return documents.filter(isRecord).flatMap((doc) =>
    Array.isArray(doc.items) ? doc.items.filter(isRecord) : [doc]
  );
}

function isService(
  object: Record<string, unknown>,
): object is ServicePorts & Record<string, unknown> {
  return object.kind === "Service";
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isParseArgsError(error: unknown): boolean {
  return error instanceof TypeError && "code" in error &&
    String(error.code).startsWith("ERR_PARSE_ARGS");
}
