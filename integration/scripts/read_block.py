#!/usr/bin/env python3
"""Reads every Parquet file of an Ignis block with pyarrow (a stock reader,
independent of Ignis) and prints, as JSON, the sum of sample values per
profile type, plus the row count of each file.

Usage: read_block.py BLOCK_DIR [BLOCK_DIR ...]
"""
import json
import os
import sys

import pyarrow.parquet as pq

FILES = ["series", "profiles", "samples", "stacks", "locations", "functions", "mappings", "strings"]


def main():
    totals = {}
    rows = {}
    for block in sys.argv[1:]:
        meta = json.load(open(os.path.join(block, "meta.json")))
        tables = {f: pq.read_table(os.path.join(block, f + ".parquet")) for f in FILES}
        for f, t in tables.items():
            rows[f] = rows.get(f, 0) + t.num_rows
            declared = next(x["rows"] for x in meta["files"] if x["name"] == f + ".parquet")
            assert declared == t.num_rows, (block, f, declared, t.num_rows)
        series = tables["series"].to_pydict()
        ptype = dict(zip(series["series_ref"], series["profile_type"]))
        samples = tables["samples"].to_pydict()
        for ref, value in zip(samples["series_ref"], samples["value"]):
            totals[ptype[ref]] = totals.get(ptype[ref], 0) + value
        # Every stack resolves to function names through the symbol tables.
        strings = tables["strings"].column("value").to_pylist()
        functions = tables["functions"].column("name").to_pylist()
        locations = tables["locations"].column("line_function_ids").to_pylist()
        for locs in tables["stacks"].column("location_ids").to_pylist():
            for loc in locs:
                for fn in locations[loc]:
                    strings[functions[fn]]
    print(json.dumps({"totals": totals, "rows": rows}))


if __name__ == "__main__":
    main()
