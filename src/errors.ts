/**
 * Typed errors with a stable `code`; the edges (CLI, HTTP) turn them into exit
 * codes or problem+json.
 */
export class RebillError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** sysexits EX_CONFIG: the configuration is invalid. */
export const EXIT_CONFIG = 78;
/** Bad command-line usage. */
export const EXIT_USAGE = 2;
