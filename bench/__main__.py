"""`make bench` / `python -m bench [--only SUITE,...] [--events N] [--quick]`: what the
delivery guarantees cost, pipeline by pipeline, each against a baseline measured in the same
run on the same parts (or an absolute bound where the issue names one).

Suites (each a module of this package with `run(bench)`):
- publish: the outbox relay (read, publish acks=all, mark) vs a bare acks=all KafkaProducer.
- ledger: the ledger consumer on PostgreSQL and on SQLite vs a bare KafkaConsumer reading the
  same records (half of them redelivered), and two ledger workers in one group vs one.
- webhooks: signed webhook ingest with 16 concurrent clients vs a bare gunicorn + Flask
  endpoint doing the same HMAC check.
- mail: a news fan-out with throttling off vs a raw smtplib loop; a receipt sent while a
  2,000-donor fan-out drains under the default throttle.
- end_to_end: the running system at 100 gifts/s for 60 s, webhook 2xx -> receipt accepted
  by SMTP.

Parts come from DIFTS_TEST_KAFKA / DIFTS_TEST_POSTGRES / DIFTS_TEST_STRIPE when given, else
are started with the project's infra scripts and stopped after. The table is printed to stdout
and written to var/bench/results.json.
"""

from __future__ import annotations

import argparse
import importlib

from bench.common import RESULTS, bench_run, say, table, write_results

SUITES = ("publish", "ledger", "webhooks", "mail", "end_to_end")


def main() -> None:
    """Run the chosen suites, print the table and write the results."""
    parser = argparse.ArgumentParser(description="difts benchmarks")
    parser.add_argument("--only", default=",".join(SUITES), help="suites, comma-separated")
    parser.add_argument("--events", type=int, default=4000, help="events per throughput run")
    parser.add_argument("--quick", action="store_true", help="smaller runs (a smoke test)")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(SUITES))
    if unknown:
        parser.error(f"unknown suites {unknown}; choose among {', '.join(SUITES)}")
    with bench_run(args.events if not args.quick else min(args.events, 500), args.quick) as bench:
        for name in chosen:
            say(f"suite {name}...")
            importlib.import_module(f"bench.{name}").run(bench)
        rows = bench.rows
    write_results(rows)
    where = RESULTS.relative_to(RESULTS.parents[2])
    print(f"\ndifts benchmarks ({len(rows)} rows; also in {where})\n")
    print(table(rows))


if __name__ == "__main__":
    main()
