// TypeScript declarations of the vak:skill@0.1.0 WIT world (skill.wit, beside this file)
// as componentize-js binds it: interface functions are named exports of
// "vak:skill/<interface>@0.1.0", records are objects with camelCase fields,
// enums are string literals, option<T> is T | undefined, list<u8> a Uint8Array,
// u64 a bigint. A result<T, host-error> returns T or throws an Error whose
// `payload` is the HostError. `vak skill build` hands this file to tsc with
// the skill's app.ts, so a call that does not match the WIT fails the build.

declare module "vak:skill/types@0.1.0" {
  /** An ordinary failure of a host function the skill may handle. */
  export interface Failure {
    /** machine-readable code, e.g. "not_found", "timeout", "connect_failed" */
    code: string;
    /** a human-readable message (never holds a secret) */
    message: string;
  }
  /** The answer of a lookup (kv get, secrets get): `value` is "" when not found. */
  export interface Lookup {
    found: boolean;
    value: string;
  }
  export type HostError =
    | { tag: "not-found"; val: Failure }
    | { tag: "failed"; val: Failure };
  /** What a failed host call throws (a denial is a trap: nothing is thrown, the call ends). */
  export interface HostCallError extends Error {
    payload: HostError;
  }
}

declare module "vak:skill/log@0.1.0" {
  export type Level = "debug" | "info" | "warn" | "error";
  /** Append a line to the skill's log (bounded; scrubbed of secrets). */
  export function write(level: Level, message: string): void;
}

declare module "vak:skill/fs@0.1.0" {
  export interface ReadResult {
    content: Uint8Array;
    truncated: boolean;
  }
  export type EntryKind = "file" | "dir" | "symlink";
  export interface Entry {
    name: string;
    kind: EntryKind;
  }
  export interface Listing {
    entries: Entry[];
    truncated: boolean;
  }
  /** Read a file under a granted mount; `maxBytes` undefined means the kernel's bound. */
  export function read(path: string, maxBytes: number | undefined): ReadResult;
  /** Write (create or replace) a UTF-8 text file; returns the bytes written. */
  export function write(path: string, content: string): bigint;
  /** List a directory under a granted mount. */
  export function list(path: string): Listing;
}

declare module "vak:skill/http@0.1.0" {
  export interface Header {
    name: string;
    value: string;
  }
  export interface Request {
    method: string;
    url: string;
    headers: Header[];
    body: string;
    /** undefined means the kernel's bound */
    maxBytes?: number | undefined;
  }
  export interface Response {
    status: number;
    headers: Header[];
    body: Uint8Array;
    truncated: boolean;
  }
  /** Make one HTTP request through the kernel (the allowlist and Cedar decide). */
  export function send(req: Request): Response;
}

declare module "vak:skill/kv@0.1.0" {
  import type { Lookup } from "vak:skill/types@0.1.0";
  export function get(key: string): Lookup;
  export function put(key: string, value: string): void;
  function remove(key: string): boolean;
  /** Whether a value was there to delete (`import { delete as remove } ...`). */
  export { remove as delete };
  /** Keys with `prefix`, at most `limit` (1..=1000). */
  export function list(prefix: string, limit: number): string[];
}

declare module "vak:skill/secrets@0.1.0" {
  import type { Lookup } from "vak:skill/types@0.1.0";
  /** The secret called `name`, if the operator configured it. */
  export function get(name: string): Lookup;
}

declare module "vak:skill/clock@0.1.0" {
  export interface Instant {
    unixNs: bigint;
    monotonicNs: bigint;
  }
  /** The kernel's clock (mediated and recorded, unlike wasi:clocks). */
  export function now(): Instant;
}

declare module "vak:skill/random@0.1.0" {
  /** `n` random bytes (1..=the kernel's bound) from the kernel. */
  export function bytes(n: number): Uint8Array;
}
