import { formatBytes } from "../../text/units.js";
import { formatAge, healthCell, versionsCell } from "../cells.js";
import type { WorkerStatus } from "../status.js";

/** Text into HTML (element content and quoted attribute values alike). */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Control characters (but tab) as visible escapes, so a log line cannot smuggle anything into the page. */
export function printableLine(line: string): string {
  return line.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, (c) => {
    const code = c.charCodeAt(0);
    return `\\x${code.toString(16).padStart(2, "0")}`;
  });
}

export const COLUMNS = [
  ["name", "Worker"],
  ["sandbox", "Sandbox"],
  ["state", "State"],
  ["health", "Health"],
  ["restarts", "Restarts"],
  ["uptime", "Uptime"],
  ["cpu", "CPU"],
  ["memory", "Memory"],
  ["heartbeat", "Heartbeat"],
  ["versions", "Versions"],
  ["run", "Run"],
] as const;

function cells(w: WorkerStatus): Record<(typeof COLUMNS)[number][0], string> {
  return {
    name: w.name,
    sandbox: w.sandbox,
    state: w.held && w.state === "stopped" ? "stopped (held)" : w.state,
    health: healthCell(w),
    restarts: w.restarts === null ? "-" : String(w.restarts),
    uptime: formatAge(w.uptimeMs),
    cpu: w.cpu === null ? "-" : `${Math.round(w.cpu * 100)}%`,
    memory: w.memoryBytes === null ? "-" : formatBytes(w.memoryBytes),
    heartbeat: w.heartbeatAgeMs === null ? "-" : `${formatAge(w.heartbeatAgeMs)}${w.stale ? " STALE" : ""}`,
    versions: versionsCell(w),
    run: w.runId ?? "-",
  };
}

function actionForm(name: string, action: "restart" | "stop" | "start"): string {
  return `<form class="action" method="post" action="/workers/${encodeURIComponent(name)}/${action}"><button type="submit">${action}</button></form>`;
}

/**
 * "open": a login link to the worker's own web UI, minted when asked (it is
 * single-use and short-lived), in a new tab. Not a fetch action: it navigates.
 */
function openForm(name: string): string {
  return `<form class="open" method="post" action="/workers/${encodeURIComponent(name)}/open" target="_blank"><button type="submit">open</button></form>`;
}

/** The page `open` answers with: the link, followed at once (a navigation, not a redirect of the form). */
export function renderOpenPage(name: string, url: string, expiresAt: string): string {
  const href = escapeHtml(url);
  return page(
    `${name}: web UI`,
    `<meta http-equiv="refresh" content="0;url=${href}"><h1>${escapeHtml(name)}</h1><p>Opening the worker's web UI: <a id="open-link" href="${href}">follow this one-time link</a> (valid until ${escapeHtml(expiresAt)}).</p>`,
  );
}

/** The rows of the fleet table (also what each server-sent `fleet` event carries, rendered). */
export function renderRows(workers: readonly WorkerStatus[]): string {
  return workers
    .map((w) => {
      const c = cells(w);
      const tds = COLUMNS.map(([key]) =>
        key === "name"
          ? `<td data-col="name"><a href="/workers/${encodeURIComponent(w.name)}">${escapeHtml(c.name)}</a></td>`
          : `<td data-col="${key}">${escapeHtml(c[key])}</td>`,
      ).join("");
      const error = w.lastError
        ? `<tr class="error" data-error-of="${escapeHtml(w.name)}"><td colspan="${COLUMNS.length + 1}">${escapeHtml(
            printableLine(w.lastError),
          )}${w.nextAttemptAt ? ` (next attempt ${escapeHtml(w.nextAttemptAt)})` : ""}</td></tr>`
        : "";
      const actions = `<td class="actions">${actionForm(w.name, "restart")}${
        w.held || w.state === "stopped" ? actionForm(w.name, "start") : actionForm(w.name, "stop")
      }${w.url && (w.state === "running" || w.state === "degraded") ? openForm(w.name) : ""}</td>`;
      return `<tr data-worker="${escapeHtml(w.name)}" data-state="${escapeHtml(w.state)}">${tds}${actions}</tr>${error}`;
    })
    .join("\n");
}

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#222;background:#fafafa}
h1{font-size:1.2rem;margin:0 0 .3rem}
.meta{color:#666;margin-bottom:1rem}
table{border-collapse:collapse;background:#fff}
th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;white-space:nowrap}
th{background:#f0f0f0}
tr[data-state=running] td[data-col=state]{color:#170}
tr[data-state=backoff] td[data-col=state],tr[data-state=failed] td[data-col=state],tr[data-state=unhealthy] td[data-col=state]{color:#b00}
tr.error td{color:#b00;white-space:pre-wrap;font-size:12px}
form.action{display:inline;margin-right:.3rem}
pre{background:#111;color:#ddd;padding:.8rem;overflow:auto;font-size:12px}
#notice{min-height:1.2rem;color:#555}
`;

function page(title: string, body: string, nonce?: string, script?: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)}</title><style${nonce ? ` nonce="${nonce}"` : ""}>${STYLE}</style></head>
<body>${body}${script && nonce ? `<script nonce="${nonce}">${script}</script>` : ""}</body></html>
`;
}

/** Live rows over SSE, and the action forms sent with fetch (they work as plain forms without it). */
const SCRIPT = `
(() => {
  const rows = document.getElementById("rows");
  const notice = document.getElementById("notice");
  const updated = document.getElementById("updated");
  const events = new EventSource("/events");
  const key = (list) => list.map((tr) => (tr.dataset.worker || "") + "|" + (tr.dataset.errorOf || "")).join(",");
  events.addEventListener("fleet", (event) => {
    const data = JSON.parse(event.data);
    updated.textContent = data.at;
    const fresh = document.createElement("tbody");
    fresh.innerHTML = data.html;
    const next = Array.from(fresh.children);
    const now = Array.from(rows.children);
    // Other rows: start over. The same rows: only the cells that changed, so a button under the pointer stays.
    if (key(next) !== key(now)) return rows.replaceChildren(...next);
    next.forEach((tr, i) => {
      const old = now[i];
      if (old.outerHTML === tr.outerHTML) return;
      for (const name of ["data-state"]) if (tr.hasAttribute(name)) old.setAttribute(name, tr.getAttribute(name));
      const cells = Array.from(tr.cells);
      Array.from(old.cells).forEach((td, j) => {
        if (cells[j] && td.innerHTML !== cells[j].innerHTML) td.replaceWith(cells[j]);
      });
    });
  });
  events.addEventListener("error", () => { notice.textContent = "live updates interrupted, retrying..."; });
  events.addEventListener("open", () => { notice.textContent = ""; });
  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.classList.contains("action")) return;
    event.preventDefault();
    const button = form.querySelector("button");
    if (button) button.disabled = true;
    try {
      const response = await fetch(form.getAttribute("action"), { method: "POST", headers: { accept: "application/json" } });
      const body = await response.json().catch(() => ({}));
      notice.textContent = body.message || response.statusText;
    } catch (error) {
      notice.textContent = String(error);
    }
  });
})();
`;

export interface PageContext {
  configFile: string;
  host: string;
  node: string;
  pid: number;
  at: string;
  notice?: string;
}

/** `/`: the fleet table, complete without JavaScript; the script only keeps it live. */
export function renderFleetPage(
  workers: readonly WorkerStatus[],
  context: PageContext,
  nonce: string,
): string {
  const head = COLUMNS.map(([, title]) => `<th>${title}</th>`).join("");
  const body = `<h1>openwork workers</h1>
<div class="meta">${escapeHtml(context.configFile)} &middot; supervisor pid ${context.pid} on ${escapeHtml(
    context.host,
  )} (node ${escapeHtml(context.node)}) &middot; updated <span id="updated">${escapeHtml(context.at)}</span></div>
<div id="notice">${escapeHtml(context.notice ?? "")}</div>
<table id="fleet"><thead><tr>${head}<th>Actions</th></tr></thead>
<tbody id="rows">
${renderRows(workers)}
</tbody></table>
<p class="meta">Metrics: <a href="/metrics">/metrics</a></p>`;
  return page("openwork workers", body, nonce, SCRIPT);
}

/** `/workers/NAME`: one worker's row and its last log lines. */
export function renderWorkerPage(
  worker: WorkerStatus,
  lines: readonly string[],
  logError: string | null,
  nonce: string,
): string {
  const head = COLUMNS.map(([, title]) => `<th>${title}</th>`).join("");
  const log = logError
    ? `<p class="error">${escapeHtml(logError)}</p>`
    : `<pre id="log">${lines.map((line) => escapeHtml(printableLine(line))).join("\n")}</pre>`;
  const body = `<p><a href="/">&larr; the fleet</a></p>
<h1>${escapeHtml(worker.name)}</h1>
<div class="meta">${escapeHtml(worker.workspace)}${worker.url ? ` &middot; ${escapeHtml(worker.url)}` : ""}</div>
<table><thead><tr>${head}<th>Actions</th></tr></thead><tbody>${renderRows([worker])}</tbody></table>
<h2>Last ${lines.length} log lines <small>(<a href="/workers/${encodeURIComponent(worker.name)}/logs">text</a>)</small></h2>
${log}`;
  return page(`openwork worker ${worker.name}`, body, nonce);
}

/** An error or a notice, alone on its page. */
export function renderMessage(title: string, text: string): string {
  return page(title, `<h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p>`);
}
