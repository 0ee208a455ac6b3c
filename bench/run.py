"""Run every benchmark in turn and print one JSON object with all results.

Benchmarks measure; they never assert a speed. Record the figures in docs/benchmarks.md.
"""

from __future__ import annotations

import json
import sys

from bench import analysis_throughput, collector_throughput, ingest_throughput


def main() -> None:
    results = {}
    sys.argv = [sys.argv[0]]
    results["analysis_throughput"] = analysis_throughput.main()
    results["collector_throughput"] = collector_throughput.main()
    results["ingest_throughput"] = ingest_throughput.main()
    from bench import console_speed  # needs Playwright and Debian's chromium (make browser)

    results["console_speed"] = console_speed.main()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
