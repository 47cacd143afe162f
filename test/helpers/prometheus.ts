/**
 * A small, strict parser of the Prometheus text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/): `# HELP`,
 * `# TYPE`, samples with labels. Anything it does not understand is an error
 * naming the line, so a test that parses an answer also checks its syntax.
 */

export type MetricType = "counter" | "gauge" | "histogram" | "summary" | "untyped";

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
  timestamp?: number;
}

export interface Family {
  name: string;
  help?: string;
  type?: MetricType;
  samples: Sample[];
}

export interface Exposition {
  families: Map<string, Family>;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES: readonly MetricType[] = ["counter", "gauge", "histogram", "summary", "untyped"];
const SUFFIXES: Record<MetricType, readonly string[]> = {
  counter: [""],
  gauge: [""],
  untyped: [""],
  histogram: ["_bucket", "_sum", "_count"],
  summary: ["", "_sum", "_count"],
};

function fail(lineNo: number, line: string, why: string): never {
  throw new Error(`line ${lineNo}: ${why}: ${JSON.stringify(line)}`);
}

/**
 * A value as Prometheus reads it (Go's strconv.ParseFloat): the special values in any case
 * (prom-client writes NaN as "Nan").
 */
function parseValue(raw: string): number | undefined {
  if (/^\+?inf(inity)?$/i.test(raw)) return Number.POSITIVE_INFINITY;
  if (/^-inf(inity)?$/i.test(raw)) return Number.NEGATIVE_INFINITY;
  if (/^nan$/i.test(raw)) return Number.NaN;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(raw)) return undefined;
  return Number(raw);
}

/** HELP text: only `\\` and `\n` are escapes. */
function unescapeHelp(text: string, lineNo: number, line: string): string {
  return text.replace(/\\(.?)/g, (_, c: string) => {
    if (c === "\\") return "\\";
    if (c === "n") return "\n";
    return fail(lineNo, line, `bad escape \\${c} in HELP`);
  });
}

/** `{a="x",b="y"}` at the start of `rest`: the labels and what follows the closing brace. */
function parseLabels(
  rest: string,
  lineNo: number,
  line: string,
): { labels: Record<string, string>; after: string } {
  const labels: Record<string, string> = {};
  let i = 1; // past "{"
  for (;;) {
    if (rest[i] === "}") return { labels, after: rest.slice(i + 1) };
    const name = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(rest.slice(i))?.[0];
    if (!name) fail(lineNo, line, "expected a label name");
    i += name.length;
    if (rest[i] !== "=" || rest[i + 1] !== '"') fail(lineNo, line, `expected ="…" after label ${name}`);
    i += 2;
    let value = "";
    for (;;) {
      const c = rest[i];
      if (c === undefined) fail(lineNo, line, `unterminated value of label ${name}`);
      if (c === '"') break;
      if (c === "\\") {
        const next = rest[i + 1];
        if (next === "\\") value += "\\";
        else if (next === '"') value += '"';
        else if (next === "n") value += "\n";
        else fail(lineNo, line, `bad escape \\${next ?? ""} in label ${name}`);
        i += 2;
      } else {
        value += c;
        i += 1;
      }
    }
    i += 1; // past the closing quote
    if (Object.hasOwn(labels, name)) fail(lineNo, line, `label ${name} given twice`);
    labels[name] = value;
    if (rest[i] === ",") i += 1;
    else if (rest[i] !== "}") fail(lineNo, line, "expected , or } after a label");
  }
}

/** Parse an exposition; throws on the first line that is not well-formed. */
export function parsePrometheus(text: string): Exposition {
  if (text.length > 0 && !text.endsWith("\n")) throw new Error("the exposition does not end with a newline");
  const families = new Map<string, Family>();
  const samples: Sample[] = [];
  const seen = new Set<string>();
  const family = (name: string): Family => {
    let f = families.get(name);
    if (!f) {
      f = { name, samples: [] };
      families.set(name, f);
    }
    return f;
  };
  const lines = text.split("\n");
  lines.pop(); // after the final newline
  lines.forEach((line, index) => {
    const lineNo = index + 1;
    if (line.trim() === "") return;
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
      if (!m) {
        if (/^#\s*(HELP|TYPE)\b/.test(line)) fail(lineNo, line, "malformed HELP or TYPE");
        return; // a comment
      }
      const [, keyword, name, rest] = m as unknown as [string, string, string, string | undefined];
      if (!METRIC_NAME.test(name)) fail(lineNo, line, "not a metric name");
      const f = family(name);
      if (keyword === "HELP") {
        if (f.help !== undefined) fail(lineNo, line, `second HELP for ${name}`);
        f.help = unescapeHelp(rest ?? "", lineNo, line);
      } else {
        if (f.type !== undefined) fail(lineNo, line, `second TYPE for ${name}`);
        if (f.samples.length > 0) fail(lineNo, line, `TYPE for ${name} after its samples`);
        if (!TYPES.includes(rest as MetricType)) fail(lineNo, line, `unknown type ${rest}`);
        f.type = rest as MetricType;
      }
      return;
    }
    const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0];
    if (!name) fail(lineNo, line, "expected a metric name");
    let rest = line.slice(name.length);
    let labels: Record<string, string> = {};
    if (rest.startsWith("{")) ({ labels, after: rest } = parseLabels(rest, lineNo, line));
    const parts = rest.split(" ");
    // stricter than the format, which allows runs of blanks: prom-client writes one space
    if (parts[0] !== "" || parts.length < 2 || parts.length > 3 || parts.slice(1).includes(""))
      fail(lineNo, line, "expected one space, a value and an optional timestamp");
    const value = parseValue(parts[1] as string);
    if (value === undefined) fail(lineNo, line, "not a number");
    const sample: Sample = { name, labels, value };
    if (parts[2] !== undefined) {
      if (!/^-?\d+$/.test(parts[2])) fail(lineNo, line, "not a timestamp");
      sample.timestamp = Number(parts[2]);
    }
    for (const label of Object.keys(labels))
      if (!LABEL_NAME.test(label) || label.startsWith("__")) fail(lineNo, line, `reserved label ${label}`);
    // The sample belongs to the family whose TYPE names it (name, or name plus a suffix of its type).
    const owner = [...families.values()].find(
      (f) => f.type !== undefined && SUFFIXES[f.type].some((suffix) => `${f.name}${suffix}` === name),
    );
    if (!owner) fail(lineNo, line, `sample of ${name} before any TYPE that names it`);
    if (owner.type === "histogram" && name.endsWith("_bucket") && labels.le === undefined)
      fail(lineNo, line, "a histogram bucket without le");
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(key)) fail(lineNo, line, "the same series twice");
    seen.add(key);
    owner.samples.push(sample);
    samples.push(sample);
  });
  return { families, samples };
}

/**
 * The value of the one series named `name` whose labels include `labels`
 * (undefined when there is none; an error when more than one matches).
 */
export function sampleValue(
  exposition: Exposition,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const matches = exposition.samples.filter(
    (sample) =>
      sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value),
  );
  if (matches.length > 1)
    throw new Error(`${matches.length} series of ${name} match ${JSON.stringify(labels)}`);
  return matches[0]?.value;
}
