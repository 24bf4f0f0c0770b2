/**
 * An async-first resource pool for Deno: keep expensive connections open and
 * share them safely between concurrent tasks.
 *
 * @module
 */
export * from "./pool/types.ts";
