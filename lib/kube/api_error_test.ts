import assert from "node:assert/strict";
import { ApiError, classify, decodeErrorBody, parseRetryAfter } from "./api_error.ts";

Deno.test("classify() maps HTTP status and reason to a bounded kind", () => {
  const cases: Array<[number, string, string]> = [
    [400, "BadRequest", "BadRequest"],
    [401, "Unauthorized", "Unauthorized"],
    [403, "Forbidden", "Forbidden"],
    [404, "NotFound", "NotFound"],
    [409, "Conflict", "Conflict"],
    [409, "AlreadyExists", "AlreadyExists"],
    [410, "Expired", "Gone"],
    [422, "Invalid", "Invalid"],
    [429, "TooManyRequests", "TooManyRequests"],
    [500, "InternalError", "ServerError"],
    [503, "ServiceUnavailable", "ServerError"],
    [504, "Timeout", "Timeout"],
    [500, "Timeout", "Timeout"],
    [302, "", "Unknown"],
  ];
  for (const [status, reason, kind] of cases) {
    assert.equal(classify(status, reason), kind, `${status} ${reason}`);
  }
});

Deno.test("ApiError carries the Status fields and names request, status and field causes", () => {
  const { body } = decodeErrorBody(JSON.stringify({
    kind: "Status",
    apiVersion: "v1",
    status: "Failure",
    reason: "Invalid",
    code: 422,
    message: 'Service "x" is invalid',
    details: {
      causes: [{
        reason: "FieldValueInvalid",
        message: "must be <= 65535",
        field: "spec.ports[0].port",
      }],
    },
  }));
  assert.ok(body);
  const error = new ApiError({ status: 422, method: "PUT", path: "/api/v1/x", body });
  assert.equal(error.name, "ApiError");
  assert.equal(error.kind, "Invalid");
  assert.equal(error.reason, "Invalid");
  assert.deepEqual(error.causes, [
    { field: "spec.ports[0].port", reason: "FieldValueInvalid", message: "must be <= 65535" },
  ]);
  assert.equal(
    error.message,
    'PUT /api/v1/x failed: 422 Invalid: Service "x" is invalid (spec.ports[0].port: must be <= 65535)',
  );
});

Deno.test("ApiError keeps a non-Status body as truncated text", () => {
  const decoded = decodeErrorBody("x".repeat(1000));
  assert.equal(decoded.body, undefined);
  const error = new ApiError({ status: 502, method: "GET", path: "/p", ...decoded });
  assert.equal(error.kind, "ServerError");
  assert.match(error.message, /^GET \/p failed: 502 ServerError: x{256}…$/);
});

Deno.test("parseRetryAfter() reads delay seconds or an HTTP date, and ignores garbage", () => {
  assert.equal(parseRetryAfter("3"), 3);
  assert.equal(parseRetryAfter(" 0 "), 0);
  assert.equal(parseRetryAfter(null), undefined);
  const now = Date.parse("2015-10-21T07:28:00Z");
  assert.equal(parseRetryAfter("Wed, 21 Oct 2015 07:28:07 GMT", now), 7);
  assert.equal(parseRetryAfter("Wednesday, 21-Oct-15 07:28:30 GMT", now), 30);
  assert.equal(parseRetryAfter("Wed Oct 21 07:29:00 2015", now), 60);
  assert.equal(parseRetryAfter("Wed, 21 Oct 2015 07:27:00 GMT", now), 0, "a past date: at once");
  assert.equal(parseRetryAfter("Wed, 21 Oct 2015 07:28:00.5 GMT", now), undefined);
  for (const garbage of ["", "-1", "1.5", "1 2", "soon"]) {
    assert.equal(parseRetryAfter(garbage, now), undefined, JSON.stringify(garbage));
  }
});
