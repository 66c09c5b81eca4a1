/**
 * `errno` of the calling thread (read through `__errno_location()`, whose pointer is per thread and
 * fetched once), and the names of the errors the engines report.
 * @module
 */

/** Reads `errno` of the thread that created it. */
export class ErrnoReader {
  readonly #view: Deno.UnsafePointerView;

  /** @param errnoLocation `__errno_location` from libc, called on the thread that reads. */
  constructor(errnoLocation: () => Deno.PointerValue) {
    const pointer = errnoLocation();
    if (pointer === null) throw new Error("__errno_location() returned NULL");
    this.#view = new Deno.UnsafePointerView(pointer);
  }

  /** The current `errno`. */
  get(): number {
    return this.#view.getInt32(0);
  }
}

/** errno values (the same on x86-64 and aarch64 Linux) the engines test for. */
export const Errno = {
  EINTR: 4,
  EIO: 5,
  EAGAIN: 11,
  EINVAL: 22,
  ENOPROTOOPT: 92,
  EAFNOSUPPORT: 97,
  ECONNREFUSED: 111,
  ENFILE: 23,
  EMFILE: 24,
  ECONNABORTED: 103,
  EINPROGRESS: 115,
} as const;

const NAMES: Readonly<Record<number, readonly [string, string]>> = {
  1: ["EPERM", "Operation not permitted"],
  4: ["EINTR", "Interrupted system call"],
  5: ["EIO", "Input/output error"],
  9: ["EBADF", "Bad file descriptor"],
  11: ["EAGAIN", "Resource temporarily unavailable"],
  12: ["ENOMEM", "Cannot allocate memory"],
  13: ["EACCES", "Permission denied"],
  14: ["EFAULT", "Bad address"],
  22: ["EINVAL", "Invalid argument"],
  23: ["ENFILE", "Too many open files in system"],
  24: ["EMFILE", "Too many open files"],
  32: ["EPIPE", "Broken pipe"],
  90: ["EMSGSIZE", "Message too long"],
  92: ["ENOPROTOOPT", "Protocol not available"],
  93: ["EPROTONOSUPPORT", "Protocol not supported"],
  97: ["EAFNOSUPPORT", "Address family not supported by protocol"],
  98: ["EADDRINUSE", "Address already in use"],
  99: ["EADDRNOTAVAIL", "Cannot assign requested address"],
  100: ["ENETDOWN", "Network is down"],
  101: ["ENETUNREACH", "Network is unreachable"],
  103: ["ECONNABORTED", "Software caused connection abort"],
  104: ["ECONNRESET", "Connection reset by peer"],
  105: ["ENOBUFS", "No buffer space available"],
  111: ["ECONNREFUSED", "Connection refused"],
  110: ["ETIMEDOUT", "Connection timed out"],
  113: ["EHOSTUNREACH", "No route to host"],
  115: ["EINPROGRESS", "Operation now in progress"],
};

/** "Address already in use (EADDRINUSE, os error 98)": the errno by name and number. */
export function describeErrno(errno: number): string {
  const [name, text] = NAMES[errno] ?? [`E${errno}`, "Unknown error"];
  return `${text} (${name}, os error ${errno})`;
}

/** An OS error from a libc call, named by errno. */
export class OsError extends Error {
  /** @param call The failed function, e.g. "bind". */
  constructor(readonly call: string, readonly errno: number) {
    super(`${call}: ${describeErrno(errno)}`);
    this.name = "OsError";
  }
}
