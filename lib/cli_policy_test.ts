import assert from "node:assert/strict";
import { type Command, FlagError, parseCommandLine } from "./cli.ts";

function run(args: string[]) {
  const command: Command = parseCommandLine(args);
  return command.kind === "run" ? command.options : assert.fail("not a run command");
}

Deno.test("the access policy flags: defaults mean 'per mode' (deny) and 'everyone' (sources)", () => {
  const parsed = run(["--config", "x.yaml"]);
  assert.equal(parsed.deniedTargetCidrs, undefined, "auto: decided by the mode");
  assert.deepEqual(parsed.allowedTargetCidrs, []);
  assert.deepEqual(parsed.defaultSourceRanges, []);
  assert.equal(parsed.allowedTargetNamespaces, undefined);
  assert.deepEqual(run(["--config=x", "--denied-target-cidrs="]).deniedTargetCidrs, [], "off");
  assert.equal(run(["--config=x", "--denied-target-cidrs=auto"]).deniedTargetCidrs, undefined);
  const given = run([
    "--operator-namespace=ns",
    "--denied-target-cidrs=169.254.0.0/16, fe80::/10",
    "--allowed-target-cidrs=10.0.0.0/8",
    "--default-source-ranges=192.0.2.0/24,2001:db8::/32",
    "--allowed-target-namespaces=games,db",
  ]);
  assert.deepEqual(given.deniedTargetCidrs, ["169.254.0.0/16", "fe80::/10"]);
  assert.deepEqual(given.allowedTargetCidrs, ["10.0.0.0/8"]);
  assert.deepEqual(given.defaultSourceRanges, ["192.0.2.0/24", "2001:db8::/32"]);
  assert.deepEqual(given.allowedTargetNamespaces, ["games", "db"]);
});

Deno.test("the access policy flags name the bad range and why", () => {
  const cases: Array<[string[], RegExp]> = [
    [
      ["--config=x", "--denied-target-cidrs=10.1.2.3/8"],
      /invalid value "10\.1\.2\.3\/8" for --denied-target-cidrs: .*did you mean 10\.0\.0\.0\/8/,
    ],
    [
      ["--config=x", "--allowed-target-cidrs=nope"],
      /--allowed-target-cidrs: "nope" is not an IP address/,
    ],
    [["--config=x", "--default-source-ranges=10.0.0.0/40"], /prefix length must be from 0 to 32/],
    [["--config=x", "--allowed-target-namespaces=games"], /needs operator mode/],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => parseCommandLine(args), (error) => {
      assert.ok(error instanceof FlagError);
      assert.match(error.message, message);
      return true;
    });
  }
});
