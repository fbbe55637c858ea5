"""`breaches list`, `breaches show` and `report`, one module per job:

- queries.py     what is selected (BreachFilter, the report's period) and the light rows both stores hand over
                 (StoredBreach: a breach as stored; ThreadFacts: what a report reads of a thread)
- statistics.py  the report's numbers (build_report: totals, groups, weekly, histogram, causes)
- breaches.py    breaches as JSON objects, CSV rows and a table
- timeline.py    one breach's story, as events and as text
- tables.py      the report as a table and as CSV
- page.py        the report as a self-contained HTML page with charts (page.html.j2; loads matplotlib)

The stores answer the queries (store.py, stores/postgres.py: select_breaches, report_records, find_breach);
app.py wires them, cli.py prints."""
