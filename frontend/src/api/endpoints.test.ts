import { describe, expect, it } from "vitest";
import { ENDPOINTS, endpointMethod, endpointUrl } from "./endpoints";
import saved from "../../openapi.json";


const schema = saved as unknown as { paths: Record<string, Record<string, unknown>> };

describe("endpoints", () => {
  it("every endpoint the client calls is in the saved OpenAPI schema", () => {
    const missing = Object.entries(ENDPOINTS).filter(([, entry]) => {
      const [method, path] = entry.split(" ");
      return !schema.paths[`/api/v1${path}`]?.[method.toLowerCase()];
    });
    expect(missing).toEqual([]);
  });

  it("fills path parameters (escaped) and drops empty query values", () => {
    expect(endpointUrl("getJob", { job_id: "a/b" })).toBe("/api/v1/jobs/a%2Fb");
    expect(endpointUrl("listSAEs", {}, { page: 2, search: "", model: null, sort: "name" })).toBe("/api/v1/saes?page=2&sort=name");
    expect(endpointMethod("deleteSAE")).toBe("DELETE");
    expect(() => endpointUrl("getSAE")).toThrow(/sae_id/);
  });
});
