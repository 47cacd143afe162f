import path from "node:path";
import { SANDBOX_PATHS } from "../contract/layout.js";
import { UsageError } from "../errors/errors.js";

/** The directory every validated mount lives under inside the sandbox. */
export const EXTRA_MOUNT_ROOT = SANDBOX_PATHS.extraMounts;

/** A spec split into its parts, before any file-system check. */
export interface ParsedMountSpec {
  spec: string;
  hostPath: string;
  /** normalised relative subpath below /workspace/extra */
  subpath: string;
  /** what the user asked for; "ro" when not given */
  mode: "ro" | "rw";
  /** whether the mode was written explicitly */
  explicitMode: boolean;
}

/**
 * Characters no substrate's mount syntax can carry safely: Apple's `--mount`
 * splits on "," and "=" (a path containing them silently becomes another
 * path), and control characters would corrupt log lines and argv alike. They
 * are refused for every substrate so that one spec means the same everywhere.
 */
const UNSAFE_CHARACTERS = /[,=\u0000-\u001f\u007f]/;

/** `C:\dir` or `C:/dir`: a Windows drive path, whose colon is not a separator. */
const DRIVE_PREFIX = /^[A-Za-z]:[\\/]/;

export function mountError(spec: string, reason: string, hint?: string): UsageError {
  return new UsageError(`--mount ${JSON.stringify(spec)}: ${reason}`, hint);
}

function describeCharacter(character: string): string {
  const code = character.codePointAt(0) ?? 0;
  if (character === ",") return '","';
  if (character === "=") return '"="';
  return `control character U+${code.toString(16).toUpperCase().padStart(4, "0")}`;
}

/**
 * Split `hostPath:containerSubpath[:ro|rw]`. The spec is NFC-normalised first
 * (so a decomposed "é" and a composed one are the same name); only the ASCII
 * colon separates: a fullwidth colon (U+FF1A) or any other look-alike is part
 * of a name. The subpath is the last field (after an optional mode), so a host
 * path may itself contain colons, and a leading drive letter is never a split.
 */
export function parseMountSpec(raw: string): ParsedMountSpec {
  const spec = raw.normalize("NFC");
  if (spec.trim() === "")
    throw mountError(raw, "empty mount spec", "write hostPath:containerSubpath[:ro|rw]");
  const unsafe = UNSAFE_CHARACTERS.exec(spec);
  if (unsafe)
    throw mountError(
      raw,
      `contains ${describeCharacter(unsafe[0])}, which mount syntaxes cannot carry`,
      "rename the directory or mount a parent without it",
    );

  const drive = DRIVE_PREFIX.exec(spec)?.[0] ?? "";
  const fields = spec.slice(drive.length).split(":");
  fields[0] = drive + fields[0];

  let mode: "ro" | "rw" = "ro";
  let explicitMode = false;
  const last = fields[fields.length - 1];
  if (fields.length >= 3 && (last === "ro" || last === "rw")) {
    mode = last;
    explicitMode = true;
    fields.pop();
  } else if (fields.length === 2 && (last === "ro" || last === "rw")) {
    throw mountError(
      raw,
      `missing container subpath ("${last}" reads as a mode)`,
      `write ${fields[0]}:<subpath>:${last}`,
    );
  }
  if (fields.length < 2)
    throw mountError(raw, "missing container subpath", "write hostPath:containerSubpath[:ro|rw]");

  const subpathRaw = fields.pop() ?? "";
  const hostPath = fields.join(":");
  if (hostPath === "") throw mountError(raw, "empty host path", "write hostPath:containerSubpath[:ro|rw]");
  return { spec: raw, hostPath, subpath: normaliseSubpath(raw, subpathRaw), mode, explicitMode };
}

function normaliseSubpath(spec: string, subpath: string): string {
  if (subpath === "")
    throw mountError(spec, "empty container subpath", "name a directory below /workspace/extra");
  if (subpath.startsWith("/") || subpath.startsWith("\\") || DRIVE_PREFIX.test(subpath))
    throw mountError(
      spec,
      `container subpath "${subpath}" is absolute`,
      `give a relative name; it is mounted at ${EXTRA_MOUNT_ROOT}/<subpath>`,
    );
  if (subpath.includes("\\"))
    throw mountError(spec, `container subpath "${subpath}" contains a backslash`, "use / between segments");
  const segments = subpath.split("/").filter((segment, index, all) => {
    // a trailing slash is harmless; an empty segment in the middle is a typo we refuse below
    return !(segment === "" && index === all.length - 1);
  });
  for (const segment of segments) {
    if (segment === "..")
      throw mountError(
        spec,
        `container subpath "${subpath}" contains ".."`,
        `it must stay below ${EXTRA_MOUNT_ROOT}`,
      );
    if (segment === "." || segment === "")
      throw mountError(
        spec,
        `container subpath "${subpath}" has an empty or "." segment`,
        "write a/b, not a//b or a/./b",
      );
  }
  return segments.join("/");
}

export function containerPathFor(subpath: string): string {
  return path.posix.join(EXTRA_MOUNT_ROOT, subpath);
}

export function isWindowsDrivePath(hostPath: string): boolean {
  return /^[A-Za-z]:([\\/]|$)/.test(hostPath);
}
