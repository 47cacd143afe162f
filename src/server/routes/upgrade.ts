import { endpoints, upgradeRequestSchema } from "../../contract/api.js";
import type { Route } from "../dispatch.js";
import { HttpError, parseBody, readJsonBody, sendOk } from "../http.js";
import type { UpgradeRunner } from "../upgrade.js";
import type { OperationStore } from "../upgrade-record.js";

export function upgradeRoutes(runner: UpgradeRunner, operations: OperationStore): Route[] {
  return [
    {
      endpoint: endpoints.upgrade,
      handle: async ({ req, res, requestId }) => {
        const request = parseBody(upgradeRequestSchema, await readJsonBody(req));
        const operation = await runner.begin(request);
        res.setHeader("location", `/system/runtime/upgrade/${operation.operationId}`);
        sendOk(res, requestId, 202, operation);
      },
    },
    {
      endpoint: endpoints.operation,
      handle: ({ res, requestId, params }) => {
        const operation = operations.get(params.operationId ?? "");
        if (!operation)
          throw new HttpError(404, "operation_not_found", `no upgrade operation ${params.operationId}`);
        sendOk(res, requestId, 200, operation);
      },
    },
  ];
}
