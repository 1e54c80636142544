# redteam: catalog reads: SQLite's schema tables (sqlite_master, sqlite_schema, temp, sequence, stats, dbstat)
# command: exec
# db: demo
# expect: db_denied
# prelude: lib/every_attempt_refused.py

ATTEMPTS = [
    'SELECT sql FROM sqlite_master',
    'SELECT * FROM sqlite_schema',
    'SELECT * FROM "main"."SQLITE_MASTER"',
    'SELECT * FROM sqlite_temp_master',
    'SELECT * FROM sqlite_sequence',
    'SELECT * FROM sqlite_stat1',
    'SELECT * FROM dbstat',
    'WITH t AS (SELECT name FROM sqlite_master) SELECT * FROM t',
]

every_attempt_refused(ATTEMPTS)
