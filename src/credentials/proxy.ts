import type { SandboxKind } from "../sandbox/backend.js";
/** The proxy variables a caller's environment may carry, both cases, as curl, git, Node and Bun read them. */
export const PROXY_VARIABLES = [
  "HTTPS_PROXY",
  "https_proxy",
  "HTTP_PROXY",
  "http_proxy",
  "ALL_PROXY",
  "all_proxy",
  "NO_PROXY",
  "no_proxy",
] as const;

const NO_PROXY_NAMES = new Set(["NO_PROXY", "no_proxy"]);

/** A placeholder host the entrypoint replaces with the VM's gateway, read inside the VM (Apple's backend). */
export const GATEWAY_PLACEHOLDER = "openwork-host-gateway.invalid";

/** How the sandbox reaches the host, per substrate: a name Docker resolves, or the VM's gateway. */
export function hostAliasFor(substrate: SandboxKind): string | undefined {
  if (substrate === "docker") return "host.docker.internal";
  if (substrate === "container") return GATEWAY_PLACEHOLDER;
  return undefined;
}

export interface ProxyRewrite {
  name: string;
  from: string;
  to: string;
}

function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  return host === "localhost" || host === "::1" || /^127(\.\d{1,3}){3}$/.test(host);
}

/**
 * A proxy URL as the sandbox must see it: a loopback host means this machine,
 * which inside a sandbox is the sandbox itself, so it becomes the host's
 * address as seen from there. Anything that is not a URL is left alone.
 */
export function rewriteProxyUrl(value: string, alias: string): string {
  let url: URL;
  try {
    // A proxy given without a scheme (host:port) is http, as curl reads it.
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`);
  } catch {
    return value;
  }
  if (!isLoopback(url.hostname)) return value;
  const rewritten = value.replace(
    /^([a-z][a-z0-9+.-]*:\/\/)?((?:[^@/]*@)?)(\[[^\]]*\]|[^:/]+)/i,
    `$1$2${alias}`,
  );
  return rewritten;
}

/**
 * The caller's proxy variables for the runtime, with loopback kept off the
 * proxy (the runtime's components talk to each other on 127.0.0.1). A
 * loopback proxy is rewritten for a sandbox later, over the merged values
 * (src/credentials/plan.ts), whichever source set it.
 */
export function proxyEnvironment(caller: NodeJS.ProcessEnv): { values: Record<string, string> } {
  const values: Record<string, string> = {};
  for (const name of PROXY_VARIABLES) {
    const value = caller[name];
    if (value !== undefined && value !== "") values[name] = value;
  }
  const proxied = Object.keys(values).some((name) => !NO_PROXY_NAMES.has(name));
  if (proxied) {
    const list = noProxyUnion(values.NO_PROXY, values.no_proxy, "localhost,127.0.0.1,::1");
    values.NO_PROXY = list;
    values.no_proxy = list;
  }
  return { values };
}

/**
 * One NO_PROXY list from several: tools disagree on which case wins (Bun and
 * curl read no_proxy first), so a host given in one case only must not be
 * missing from the other.
 */
export function noProxyUnion(...lists: Array<string | undefined>): string {
  const out: string[] = [];
  for (const list of lists)
    for (const item of (list ?? "").split(",").map((entry) => entry.trim()))
      if (item && !out.includes(item)) out.push(item);
  return out.join(",");
}
