"""Tables derived from the published history: ``segment_history`` and ``segment_registry``.

``segment_history``: SCD type 2 validity ranges of each customer's segment, for BI.

Derived inside the publish transaction from ``customer_segments_history`` (one row per customer
and published run date), so it is always consistent with it, idempotent when a run date is
re-published, and correct when an older date is back-filled. One row per customer and unbroken
stretch of published runs in the same segment:

- ``valid_from``: first published run date of the stretch;
- ``valid_to``: the first published run date *after* the stretch (exclusive end), NULL while the
  stretch is current; a customer is in ``segment_id`` on run dates ``valid_from <= d < valid_to``;
- ``end_reason``: ``moved`` (seen in another segment on ``valid_to``), ``absent`` (not in that
  run's drop: the row is closed; if the customer comes back, a new row opens) or NULL (current);
- ``is_current``: ``valid_to IS NULL``;
- ``run_date``: run date of the last change of the row (its opening, or its closing once closed).

Only promoted (published) runs count: a night whose model was not promoted changes nothing.
The statement reads the whole history table, which DuckDB scans quickly even for hundreds of
millions of rows; an incremental update would trade that for fragile handling of re-runs.
"""

SEGMENT_HISTORY_SQL = """
WITH runs AS (
    SELECT run_date,
           lag(run_date) OVER (ORDER BY run_date) AS prev_run,
           lead(run_date) OVER (ORDER BY run_date) AS next_run
    FROM (SELECT DISTINCT run_date FROM {source})
),
h AS (
    SELECT c.customer_id, c.segment AS segment_id, c.run_date, r.prev_run,
           lag(c.run_date) OVER w AS cust_prev_run,
           lag(c.segment) OVER w AS cust_prev_segment
    FROM {source} c JOIN runs r USING (run_date)
    WINDOW w AS (PARTITION BY c.customer_id ORDER BY c.run_date)
),
islands AS (
    SELECT *,
           sum(CASE WHEN cust_prev_run IS NULL OR cust_prev_run <> prev_run
                         OR cust_prev_segment <> segment_id THEN 1 ELSE 0 END)
               OVER (PARTITION BY customer_id ORDER BY run_date ROWS UNBOUNDED PRECEDING)
               AS island
    FROM h
),
spans AS (
    SELECT customer_id, island, min(segment_id) AS segment_id,
           min(run_date) AS valid_from, max(run_date) AS last_run
    FROM islands GROUP BY customer_id, island
)
SELECT s.customer_id,
       CAST(s.segment_id AS BIGINT) AS segment_id,
       s.valid_from,
       r.next_run AS valid_to,
       r.next_run IS NULL AS is_current,
       CASE WHEN r.next_run IS NULL THEN NULL
            WHEN nxt.customer_id IS NULL THEN 'absent'
            ELSE 'moved' END AS end_reason,
       coalesce(r.next_run, s.valid_from) AS run_date
FROM spans s
JOIN runs r ON r.run_date = s.last_run
LEFT JOIN {source} nxt ON nxt.customer_id = s.customer_id AND nxt.run_date = r.next_run
ORDER BY s.customer_id, s.valid_from
"""


def segment_history_sql(source: str = "customer_segments_history") -> str:
    """The SELECT that rebuilds ``segment_history`` from the per-run history table ``source``."""
    if not source.replace("_", "").isalnum():
        raise ValueError(f"invalid table name {source!r}")
    return SEGMENT_HISTORY_SQL.format(source=source)


SEGMENT_REGISTRY_SQL = """
WITH runs AS (SELECT DISTINCT run_date FROM {source}),
spans AS (
    SELECT CAST(segment AS BIGINT) AS segment_id,
           arg_max(segment_label, run_date) AS label,
           min(run_date) AS first_seen,
           max(run_date) AS last_seen
    FROM {source} GROUP BY 1
)
SELECT s.segment_id, s.label, s.first_seen, s.last_seen,
       (SELECT min(r.run_date) FROM runs r WHERE r.run_date > s.last_seen) AS retired_at
FROM spans s
ORDER BY s.segment_id
"""


def segment_registry_sql(source: str = "segment_profiles_history") -> str:
    """The SELECT that rebuilds ``segment_registry`` from the per-run profiles ``source``: every
    segment id ever published, its label on its last published date, ``first_seen`` and
    ``last_seen`` (first and last published run dates with that id) and ``retired_at`` (the first
    published run date after ``last_seen``; NULL while the id is in the latest run). Like
    ``segment_history`` it is derived, so it is right under re-runs and back-fills in any order."""
    if not source.replace("_", "").isalnum():
        raise ValueError(f"invalid table name {source!r}")
    return SEGMENT_REGISTRY_SQL.format(source=source)
