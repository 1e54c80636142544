# redteam: function allowlist: an unlisted function hidden in ORDER BY, a window spec, a named window, a CTE or VALUES
# command: exec
# db: demo
# expect: db_denied
# prelude: lib/every_attempt_refused.py

ATTEMPTS = [
    'SELECT property_name FROM properties ORDER BY sqlite_version()',
    'SELECT sum(property_id) OVER (PARTITION BY sqlite_source_id()) FROM properties',
    'SELECT rank() OVER w FROM properties WINDOW w AS (ORDER BY sqlite_compileoption_get(0))',
    'WITH v AS (SELECT sqlite_version() AS x) SELECT x FROM v',
    'VALUES (1), (sqlite_version())',
    'SELECT changes(), last_insert_rowid(), total_changes()',
]

every_attempt_refused(ATTEMPTS)
