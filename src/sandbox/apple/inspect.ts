import { OpenworkError } from "../../errors/errors.js";
import type { SandboxStatus } from "../backend.js";
import { decodeAppleLabel } from "./argv.js";

/** One container as Apple's `inspect` / `ls --format json` describes it, in one shape for all versions. */
export interface AppleContainer {
  id: string;
  /** Apple's own word: running, stopped, stopping, unknown */
  status: string;
  state: SandboxStatus["state"];
  labels: Record<string, string>;
  image?: string;
  startedAt?: string;
  networks: Array<{ network?: string; address?: string; gateway?: string }>;
  /** which JSON layout it came in */
  schema: "pre-0.8" | "0.8" | "1.0";
}

/** Swift's JSONEncoder writes a Date as seconds since 2001-01-01T00:00:00Z unless told otherwise. */
const APPLE_REFERENCE_DATE_MS = Date.UTC(2001, 0, 1);

function record(value: unknown): Record<string, unknown> | undefined {
  return value && typeof value === "object" && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function text(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function parseDate(value: unknown): string | undefined {
  if (typeof value === "number" && Number.isFinite(value))
    return new Date(APPLE_REFERENCE_DATE_MS + value * 1000).toISOString();
  if (typeof value === "string") {
    const ms = Date.parse(value);
    return Number.isNaN(ms) ? undefined : new Date(ms).toISOString();
  }
  return undefined;
}

function stateOf(status: string): SandboxStatus["state"] {
  // "stopping" has not stopped yet: treating it as exited would let a stop race its own grace period
  return status === "running" || status === "stopping" ? "running" : "exited";
}

function parseNetworks(value: unknown): { list: AppleContainer["networks"]; ipv4: boolean } {
  if (!Array.isArray(value)) return { list: [], ipv4: false };
  let ipv4 = false;
  const list = value.map((entry) => {
    const n = record(entry) ?? {};
    if ("ipv4Address" in n || "ipv4Gateway" in n) ipv4 = true;
    const network = text(n.network);
    const address = text(n.ipv4Address) ?? text(n.address);
    const gateway = text(n.ipv4Gateway) ?? text(n.gateway);
    return {
      ...(network === undefined ? {} : { network }),
      ...(address === undefined ? {} : { address }),
      ...(gateway === undefined ? {} : { gateway }),
    };
  });
  return { list, ipv4 };
}

/**
 * One container object, in any of the three layouts:
 *  - before 0.8.0: `status: "running"`, top-level `networks[]` with `address`/`gateway`;
 *  - 0.8.0: the same, but networks carry `ipv4Address`/`ipv4Gateway`;
 *  - 1.0.0: `status: {state, networks, startedDate}`.
 * Environment variables in `configuration.initProcess` are never read or kept.
 */
export function parseAppleContainer(value: unknown, where = "container JSON"): AppleContainer {
  const object = record(value);
  const configuration = record(object?.configuration);
  const id = text(configuration?.id);
  if (!object || !configuration || !id)
    throw new OpenworkError(`cannot read ${where}: an entry has no configuration.id`, {
      code: "apple_json",
      hint: "is this Apple's container CLI? run `container --version`",
    });
  const statusObject = record(object.status);
  let status: string;
  let networks: ReturnType<typeof parseNetworks>;
  let startedAt: string | undefined;
  let schema: AppleContainer["schema"];
  if (statusObject) {
    status = text(statusObject.state) ?? "unknown";
    networks = parseNetworks(statusObject.networks ?? object.networks);
    startedAt = parseDate(statusObject.startedDate);
    schema = "1.0";
  } else {
    status = text(object.status) ?? "unknown";
    networks = parseNetworks(object.networks);
    startedAt = parseDate(object.startedDate);
    schema = networks.ipv4 ? "0.8" : "pre-0.8";
  }
  const labels: Record<string, string> = {};
  for (const [key, raw] of Object.entries(record(configuration.labels) ?? {})) {
    if (typeof raw === "string") labels[key] = decodeAppleLabel(raw);
  }
  const image = text(record(configuration.image)?.reference);
  return {
    id,
    status,
    state: stateOf(status),
    labels,
    ...(image === undefined ? {} : { image }),
    ...(startedAt === undefined ? {} : { startedAt }),
    networks: networks.list,
    schema,
  };
}

/** `container ls --format json` or `container inspect …`: a JSON array of container objects. */
export function parseAppleContainerList(
  output: string,
  where = "`container ls --format json` output",
): AppleContainer[] {
  const trimmed = output.trim();
  if (trimmed === "") return [];
  let json: unknown;
  try {
    json = JSON.parse(trimmed);
  } catch (error) {
    throw new OpenworkError(`cannot read ${where}: ${(error as Error).message}`, {
      code: "apple_json",
      hint: "is this Apple's container CLI? run `container --version`",
    });
  }
  if (!Array.isArray(json))
    throw new OpenworkError(`cannot read ${where}: expected a JSON array`, { code: "apple_json" });
  return json.map((entry) => parseAppleContainer(entry, where));
}
