import { endpoints, mintTokenRequestSchema } from "../../contract/api.js";
import type { Route } from "../dispatch.js";
import { parseBody, readJsonBody, sendOk } from "../http.js";
import type { TokenStore } from "../tokens.js";

export function tokenRoutes(tokens: TokenStore): Route[] {
  return [
    {
      endpoint: endpoints.mintToken,
      handle: async ({ req, res, requestId }) => {
        const body = parseBody(mintTokenRequestSchema, await readJsonBody(req));
        sendOk(res, requestId, 201, tokens.mintOwner(body.label));
      },
    },
  ];
}
