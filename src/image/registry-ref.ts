import { UsageError } from "../errors/errors.js";

/** `--registry HOST[:PORT]`: a registry address, no scheme and no path. */
export function parseRegistry(value: string): string {
  const text = value.trim();
  if (!/^[A-Za-z0-9.-]+(:[0-9]{1,5})?$/.test(text))
    throw new UsageError(
      `--registry ${value} is not HOST[:PORT]`,
      "name the registry as the engines do, e.g. 10.0.0.1:5000 or registry.example",
    );
  return text;
}

/** An image reference's repository and tag (a registry port is not a tag: "host:5000/repo" is tag latest). */
export function splitImageRef(ref: string): [string, string] {
  const slash = ref.lastIndexOf("/");
  const colon = ref.lastIndexOf(":");
  return colon > slash ? [ref.slice(0, colon), ref.slice(colon + 1)] : [ref, "latest"];
}
