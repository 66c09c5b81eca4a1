/**
 * Plain-language YAML syntax errors: where (1-based line and column) and why, in words a user can
 * act on, instead of the parser's `YAMLException: deficient indentation (4:1)`. An unclosed `{`,
 * `[` or quote is reported where it was opened, since the parser only notices it lines later.
 * @module
 */
import type { YAMLException } from "js-yaml";

/** A YAML syntax error located in the text. */
export interface YamlSyntaxProblem {
  /** 1-based line. */
  readonly line: number;
  /** 1-based column. */
  readonly column: number;
  /** What is wrong, in plain words. */
  readonly cause: string;
}

/** The parser's reasons, reworded; anything not listed keeps the parser's own words. */
const CAUSES: readonly [RegExp, string][] = [
  [/^tab characters must not be used/, "a tab in the indentation: YAML indents with spaces only"],
  [
    /^bad indentation of a mapping entry/,
    'this key does not line up with the keys above it, or an unquoted value contains ": " ' +
    "(indent with spaces to the same column, or quote the value)",
  ],
  [/^deficient indentation/, "this line is indented less than the block it belongs to"],
  [/^duplicated mapping key/, "this key appears twice in the same mapping"],
  [
    /^can not read a block mapping entry/,
    'a line inside a mapping without "key: value" (a missing ":"?)',
  ],
  [/^can not read an implicit mapping pair/, 'a missing ":" after a key'],
  [
    /^end of the stream or a document separator is expected/,
    'unexpected text after the end of a value (a missing "-" or ":", or a wrong indentation?)',
  ],
  [/^unidentified alias "(.*)"/, 'the alias "*$1" has no anchor "&$1" before it'],
  [
    /^unknown escape sequence/,
    'an unknown "\\" escape in a double-quoted string (write "\\\\" for a backslash, or use ' +
    "single quotes)",
  ],
  [/^missed comma between flow collection entries/, 'a missing "," between two entries'],
];

/** Locates a YAML syntax error and says what is wrong in plain words. */
export function yamlSyntaxProblem(text: string, error: YAMLException): YamlSyntaxProblem {
  const position = error.mark?.position ?? text.length;
  const unclosed = unclosedOpener(text, position);
  // Open on the parser's own line, it is the parser's reason that explains the error, unless the
  // text ends there.
  const atEnd = text.slice(position).trim() === "";
  if (unclosed !== undefined && (unclosed.line < (error.mark?.line ?? 0) || atEnd)) {
    const cause = unclosed.char === "{" || unclosed.char === "["
      ? `this "${unclosed.char}" is never closed: add "${CLOSERS[unclosed.char]}" at the end of ` +
        "the value"
      : `the string quoted with ${unclosed.char} here is never closed: add the closing ` +
        unclosed.char;
    return { line: unclosed.line + 1, column: unclosed.column + 1, cause };
  }
  const reason = error.reason ?? error.message;
  let cause = reason;
  for (const [pattern, plain] of CAUSES) {
    const match = pattern.exec(reason);
    if (match === null) continue;
    cause = plain.replaceAll("$1", match[1] ?? "");
    break;
  }
  return { line: (error.mark?.line ?? 0) + 1, column: (error.mark?.column ?? 0) + 1, cause };
}

const CLOSERS: Record<string, string> = { "{": "}", "[": "]" };

interface Opener {
  readonly char: string;
  readonly line: number;
  readonly column: number;
}

/**
 * The innermost flow collection (`{`, `[`) or quoted string still open at `end`, if any. A
 * simplified scanner: `{`, `[` and quotes count where a value may start (line start, after `: `,
 * `- `, `,` or an opener) and anywhere inside a flow collection; `#` after a blank starts a comment.
 */
function unclosedOpener(text: string, end: number): Opener | undefined {
  const stack: Opener[] = [];
  let quote: Opener | undefined;
  let line = 0;
  let lineStart = 0;
  let valueStart = true;
  for (let i = 0; i < end; i++) {
    const char = text[i] ?? "";
    const opener = { char, line, column: i - lineStart };
    if (char === "\n") {
      line++;
      lineStart = i + 1;
      valueStart = true;
      continue;
    }
    if (quote !== undefined) {
      if (quote.char === '"' && char === "\\") i++;
      else if (char === quote.char && quote.char === "'" && text[i + 1] === "'") i++;
      else if (char === quote.char) quote = undefined;
      continue;
    }
    if (char === "#" && (i === lineStart || /\s/.test(text[i - 1] ?? ""))) {
      i = text.indexOf("\n", i) - 1;
      if (i < 0) break;
      continue;
    }
    if (char === " " || char === "\t") continue;
    const inFlow = stack.length > 0;
    if ((char === "{" || char === "[") && (valueStart || inFlow)) {
      stack.push(opener);
      valueStart = true;
    } else if ((char === "}" || char === "]") && inFlow) {
      stack.pop();
      valueStart = false;
    } else if ((char === '"' || char === "'") && valueStart) {
      quote = opener;
    } else if (char === "," && inFlow) {
      valueStart = true;
    } else {
      // ": " and "- " (or at the end of a line) let a value start; anything else is plain text.
      const next = text[i + 1] ?? "\n";
      valueStart = (char === ":" || char === "-" || char === "?") && /\s/.test(next);
    }
  }
  return quote ?? stack.at(-1);
}
