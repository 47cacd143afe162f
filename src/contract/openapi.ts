import { z } from "zod";
import { API_ERROR_CODES, type EndpointSpec, errorEnvelopeSchema, type ResponseSpec } from "./api.js";

function schemaOf(type: z.ZodType): unknown {
  return z.toJSONSchema(type, { io: "output", unrepresentable: "any" });
}

/** The error envelope, with the code narrowed to the codes the server answers with. */
function errorSchema(): unknown {
  const schema = schemaOf(errorEnvelopeSchema) as {
    properties: { error: { properties: { code: Record<string, unknown> } } };
  };
  schema.properties.error.properties.code = { type: "string", enum: [...API_ERROR_CODES] };
  return schema;
}

/** A response that is not an envelope: its media type when the server makes it (text as a string). */
function rawResponse(response: ResponseSpec): Record<string, unknown> {
  if (!response.mediaType) return { description: response.description };
  const schema = response.mediaType.startsWith("text/") ? { schema: { type: "string" } } : {};
  return { description: response.description, content: { [response.mediaType]: schema } };
}

/** The OpenAPI 3.1 document of these endpoints (the server serves it at /system/openapi.json). */
export function openApiDocument(routes: readonly EndpointSpec[], version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const path = route.path.replace(/:([A-Za-z]+)/g, "{$1}").replace(/\*$/, "{path}");
    const params = [...route.path.matchAll(/:([A-Za-z]+)/g)].map((m) => ({
      name: m[1],
      in: "path",
      required: true,
      schema: { type: "string" },
    }));
    if (route.path.endsWith("*"))
      params.push({ name: "path", in: "path", required: true, schema: { type: "string" } });
    const responses: Record<string, unknown> = {};
    const errorContent = { "application/json": { schema: errorSchema() } };
    for (const [status, response] of Object.entries(route.responses)) {
      responses[status] = response.raw
        ? rawResponse(response)
        : Number(status) >= 400
          ? { description: response.description, content: errorContent }
          : {
              description: response.description,
              content: {
                "application/json": {
                  schema: {
                    type: "object",
                    required: ["ok", "data", "meta"],
                    properties: {
                      ok: { const: true },
                      data: response.data ? schemaOf(response.data) : {},
                      meta: { type: "object", properties: { requestId: { type: "string" } } },
                    },
                  },
                },
              },
            };
    }
    if (route.auth !== "none") {
      responses["401"] = {
        description: route.basicAuth
          ? "missing or wrong token (WWW-Authenticate offers Bearer and Basic)"
          : "missing or wrong token",
        content: errorContent,
      };
      if (route.auth === "host")
        responses["403"] = { description: "a valid token without host scope", content: errorContent };
    }
    responses.default = {
      description: route.errors
        ? `error envelope; codes particular to this endpoint: ${route.errors.join(", ")}`
        : "error envelope",
      content: errorContent,
    };
    const operation: Record<string, unknown> = {
      summary: route.summary,
      ...(route.description ? { description: route.description } : {}),
      parameters: [
        ...params,
        { name: "X-Request-Id", in: "header", required: false, schema: { type: "string" } },
      ],
      security:
        route.auth === "none"
          ? route.sessionCookie
            ? [{ session: [] }]
            : []
          : route.auth === "host"
            ? [{ hostToken: [] }, { hostBearer: [] }]
            : [{ bearer: [] }, { hostToken: [] }, ...(route.basicAuth ? [{ basic: [] }] : [])],
      responses,
    };
    if (route.body) {
      operation.requestBody = {
        required: true,
        content: { "application/json": { schema: schemaOf(route.body) } },
      };
    }
    const methods =
      route.method === "ALL" ? ["get", "post", "put", "patch", "delete"] : [route.method.toLowerCase()];
    paths[path] ??= {};
    for (const method of methods) (paths[path] as Record<string, unknown>)[method] = operation;
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "openwork-server",
      version,
      description: "The OpenWork runtime server: /system/* and the engine proxy.",
    },
    components: {
      securitySchemes: {
        bearer: {
          type: "http",
          scheme: "bearer",
          description: "client token (OPENWORK_TOKEN) or an owner token",
        },
        hostBearer: { type: "http", scheme: "bearer", description: "host token (OPENWORK_HOST_TOKEN)" },
        hostToken: { type: "apiKey", in: "header", name: "X-OpenWork-Host-Token" },
        session: {
          type: "apiKey",
          in: "cookie",
          name: "ow_session",
          description:
            "the web UI's session, from a login code (docs/web-ui.md); only where an operation lists it",
        },
        basic: {
          type: "http",
          scheme: "basic",
          description:
            "any username, the client token or an owner token as the password (opencode's own clients); never the host token; only where an operation lists it",
        },
      },
    },
    paths,
  };
}
