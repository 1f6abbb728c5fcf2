// parseRetryAfter under a local time zone other than UTC: an HTTP date is
// in GMT whatever its form (RFC 9110 §5.6.7), asctime's included, which
// names no zone. A file of its own: it sets the process's time zone.
process.env.TZ = "America/New_York";

import { test } from "node:test";
import assert from "node:assert/strict";
import { parseRetryAfter } from "../dist/index.js";

test("parseRetryAfter: an asctime date is GMT, not the local time zone", () => {
  assert.equal(new Date(Date.UTC(1994, 10, 6)).getTimezoneOffset(), 300, "the local zone is New York's (UTC-5 in November)");
  const now = Date.parse("1994-11-06T08:49:00Z");
  assert.equal(parseRetryAfter("Sun Nov  6 08:49:37 1994", now), 37);
  assert.equal(parseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", now), 37);
  assert.equal(parseRetryAfter("Sunday, 06-Nov-94 08:49:37 GMT", now), 37);
});
