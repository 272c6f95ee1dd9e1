/**
 * The client's contract with the saved OpenAPI schema (src/api/schema.d.ts, generated from frontend/openapi.json
 * by `npm run gen:api`): the query, request body and response of every endpoint in ENDPOINTS, read from the
 * schema, so `npm run build` fails when the client calls or reads something the API no longer has.
 */
import type { EndpointName, ENDPOINTS } from "./endpoints";
import type { paths } from "./schema";

type Entry<N extends EndpointName> = (typeof ENDPOINTS)[N];
type PathOf<N extends EndpointName> = Entry<N> extends `${string} ${infer P}` ? `/api/v1${P}` : never;
type MethodOf<N extends EndpointName> = Entry<N> extends `${infer M} ${string}` ? Lowercase<M> : never;

/** The schema's operation behind endpoint `N` (never when the schema lacks it; see `MissingEndpoints`). */
type Operation<N extends EndpointName> = PathOf<N> extends keyof paths
  ? MethodOf<N> extends keyof paths[PathOf<N>]
    ? NonNullable<paths[PathOf<N>][MethodOf<N>]>
    : never
  : never;

type Responses<N extends EndpointName> = Operation<N> extends { responses: infer R } ? R : never;
type Success<R> = R[Extract<keyof R, 200 | 201 | 202 | 204>];

/** The JSON body endpoint `N` answers with on success (undefined for an empty answer such as 204). */
export type ResponseOf<N extends EndpointName> =
  Success<Responses<N>> extends { content: { "application/json": infer T } } ? T : undefined;

/** The query parameters endpoint `N` takes. */
export type QueryOf<N extends EndpointName> =
  Operation<N> extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never;

/** The JSON request body endpoint `N` takes (never when it takes none). */
export type BodyOf<N extends EndpointName> =
  Operation<N> extends { requestBody?: { content: { "application/json": infer B } } } ? B : never;

/** Endpoints whose path or method is not in the schema (must be `never`). */
type MissingEndpoints = { [N in EndpointName]: [Operation<N>] extends [never] ? Entry<N> : never }[EndpointName];

/** A type error here names each endpoint of ENDPOINTS that the schema lacks. */
export const ENDPOINTS_IN_SCHEMA: [MissingEndpoints] extends [never] ? true : MissingEndpoints = true;
