// Hand-written protobuf encoding of querier.v1.SelectMergeProfileRequest, so
// the "export pprof" button gets binary pprof (what `go tool pprof` reads):
//   1 profile_typeID string, 2 label_selector string, 3 start int64 (ms), 4 end int64 (ms).

function varint(out, n) {
  // Non-negative integers up to 2^53 (ms timestamps): no BigInt needed.
  if (n < 0 || !Number.isSafeInteger(n)) throw new Error(`cannot encode ${n} as a varint`);
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
}

function tag(out, field, wireType) {
  varint(out, field * 8 + wireType);
}

function stringField(out, field, s) {
  const bytes = new TextEncoder().encode(s);
  tag(out, field, 2);
  varint(out, bytes.length);
  for (const b of bytes) out.push(b);
}

function int64Field(out, field, n) {
  tag(out, field, 0);
  varint(out, n);
}

/** The encoded request. */
export function encodeSelectMergeProfileRequest({ profileTypeID, labelSelector, start, end }) {
  const out = [];
  stringField(out, 1, profileTypeID);
  stringField(out, 2, labelSelector);
  int64Field(out, 3, start);
  int64Field(out, 4, end);
  return new Uint8Array(out);
}
