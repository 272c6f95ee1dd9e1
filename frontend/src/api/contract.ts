/**
 * Compile-time checks of the client against the saved OpenAPI schema (src/api/schema.d.ts, generated from
 * frontend/openapi.json by `npm run gen:api`): `npm run build` fails when an endpoint the client calls, or a
 * request body it sends, no longer matches the API.
 */
import type { DownloadRequest, ExtractRequest, TrainingRequest } from "./client";
import { ENDPOINTS } from "./endpoints";
import type { components, paths } from "./schema";
import type { ExportConfig } from "./types";

type Entry = (typeof ENDPOINTS)[keyof typeof ENDPOINTS];
type PathOf<E> = E extends `${string} ${infer P}` ? `/api/v1${P}` : never;
type MethodOf<E> = E extends `${infer M} ${string}` ? Lowercase<M> : never;

/** Endpoints whose path or method is not in the schema (must be `never`). */
type MissingEndpoints = {
  [E in Entry]: PathOf<E> extends keyof paths
    ? MethodOf<E> extends keyof paths[PathOf<E>]
      ? NonNullable<paths[PathOf<E>][MethodOf<E>]> extends never ? E : never
      : E
    : E;
}[Entry];

type Schemas = components["schemas"];
/** A request body: the server fills in defaulted fields, so every field may be left out. */
type Body<T> = { [K in keyof T]?: T[K] };
/** True when A's values fit B's and A has no field B lacks. */
type Fits<A, B> = A extends Body<B> ? ([Exclude<keyof A, keyof B>] extends [never] ? true : false) : false;
type ExportConfigBody = Omit<Schemas["ExportConfig"], "selection"> & { selection: Body<Schemas["FeatureSelection"]> };

/** Every check below must be `true`; a mismatch is a type error naming the failing check. */
export const CONTRACT_CHECKS: {
  endpoints: [MissingEndpoints] extends [never] ? true : MissingEndpoints;
  exportConfig: Fits<ExportConfig, ExportConfigBody>;
  downloadRequest: Fits<DownloadRequest, Schemas["DownloadRequest"]>;
  extractRequest: Fits<ExtractRequest, Schemas["ExtractRequest"]>;
  trainingRequest: Fits<TrainingRequest, Schemas["TrainingRequest"]>;
} = { endpoints: true, exportConfig: true, downloadRequest: true, extractRequest: true, trainingRequest: true };

/** The number of endpoints the client uses (keeps ENDPOINTS a value import). */
export const ENDPOINT_COUNT = Object.keys(ENDPOINTS).length;
