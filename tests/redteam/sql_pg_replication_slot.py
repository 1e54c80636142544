# redteam: SQL side effects: create a physical or logical replication slot (pins WAL until the disk fills)
# command: exec
# db: postgres
# expect: db_denied
# prelude: lib/every_attempt_refused.py

ATTEMPTS = [
    "SELECT pg_create_physical_replication_slot('metaexec_redteam')",
    "SELECT * FROM pg_catalog.pg_create_physical_replication_slot('metaexec_redteam', true)",
    "SELECT pg_create_logical_replication_slot('metaexec_redteam', 'test_decoding')",
    "WITH s AS (SELECT pg_create_physical_replication_slot('metaexec_redteam')) SELECT * FROM s",
]

every_attempt_refused(ATTEMPTS)
