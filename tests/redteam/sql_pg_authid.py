# redteam: catalog reads: password hashes from pg_authid (bare, qualified, quoted, in a subquery)
# command: exec
# db: postgres
# expect: db_denied
# prelude: lib/every_attempt_refused.py

ATTEMPTS = [
    'SELECT rolname, rolpassword FROM pg_authid',
    'SELECT * FROM pg_catalog.pg_authid',
    'SELECT * FROM "pg_catalog"."pg_authid"',
    'SELECT * FROM properties WHERE property_name IN (SELECT rolpassword FROM pg_authid)',
    'SELECT usename, passwd FROM pg_shadow',
]

every_attempt_refused(ATTEMPTS)
