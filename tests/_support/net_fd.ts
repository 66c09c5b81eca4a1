/**
 * Open file descriptor count of the test process, to prove that sockets are closed. Deno refuses to
 * read `/proc/self/fd` without `--allow-all`, so a child `ls` (needs `--allow-run`) lists it.
 * @module
 */

/** The number of file descriptors this process has open. */
export async function openFdCount(): Promise<number> {
  const { success, stdout } = await new Deno.Command("ls", {
    args: ["-1", `/proc/${Deno.pid}/fd`],
    stdout: "piped",
    stderr: "null",
    env: { DENO_NO_UPDATE_CHECK: "1" },
  }).output();
  if (!success) throw new Error(`Cannot list /proc/${Deno.pid}/fd`);
  return new TextDecoder().decode(stdout).split("\n").filter((line) => line !== "").length;
}
