//! The SQL functions a guest query may call, per dialect: an allowlist, never a denylist.
//!
//! The lists cover what analytics SQL needs (aggregates, arithmetic and math, text,
//! dates and times, conditionals, casts, JSON, window functions, PostgreSQL's arrays and
//! set-returning helpers) and nothing that reads server state, settings, catalogs, files
//! or other sessions. Anything else is refused by the policy with a message naming the
//! function and the flag that allows it (`--db-allow-function`). A short list of
//! functions is refused even then ([`always_refused`]): they reach files, programs,
//! settings, replication or other servers, whatever the user meant to allow.
//!
//! Table-valued functions are stricter: in SQLite only the JSON ones (`json_each`,
//! `json_tree`) are allowed by default, since the others (`pragma_table_info`, ...) read
//! the catalog and bypass `--db-tables`; in PostgreSQL the set-returning functions of
//! the list (`generate_series`, `unnest`, `jsonb_each`, ...) are allowed in `FROM`.
//!
//! Names are compared lowercase; a list is a sorted slice searched with a binary search
//! (a unit test keeps them sorted).

use super::Dialect;

/// In both dialects.
const COMMON: &[&str] = &[
    "abs",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atan2",
    "atanh",
    "avg",
    "ceil",
    "ceiling",
    "coalesce",
    "concat",
    "concat_ws",
    "cos",
    "cosh",
    "count",
    "cume_dist",
    "current_date",
    "current_time",
    "current_timestamp",
    "degrees",
    "dense_rank",
    "exp",
    "first_value",
    "floor",
    "format",
    "lag",
    "last_value",
    "lead",
    "length",
    "ln",
    "log",
    "log10",
    "lower",
    "ltrim",
    "max",
    "min",
    "mod",
    "nth_value",
    "ntile",
    "nullif",
    "octet_length",
    "percent_rank",
    "pi",
    "pow",
    "power",
    "radians",
    "random",
    "rank",
    "replace",
    "round",
    "row_number",
    "rtrim",
    "sign",
    "sin",
    "sinh",
    "sqrt",
    "substr",
    "substring",
    "sum",
    "tan",
    "tanh",
    "trim",
    "trunc",
    "upper",
];

/// SQLite only (core, math and JSON functions of the bundled library).
const SQLITE: &[&str] = &[
    "char",
    "date",
    "datetime",
    "glob",
    "group_concat",
    "hex",
    "ifnull",
    "iif",
    "instr",
    "json",
    "json_array",
    "json_array_length",
    "json_each",
    "json_error_position",
    "json_extract",
    "json_group_array",
    "json_group_object",
    "json_insert",
    "json_object",
    "json_patch",
    "json_pretty",
    "json_quote",
    "json_remove",
    "json_replace",
    "json_set",
    "json_tree",
    "json_type",
    "json_valid",
    "jsonb",
    "jsonb_array",
    "jsonb_extract",
    "jsonb_group_array",
    "jsonb_group_object",
    "jsonb_insert",
    "jsonb_object",
    "jsonb_patch",
    "jsonb_remove",
    "jsonb_replace",
    "jsonb_set",
    "julianday",
    "like",
    "likelihood",
    "likely",
    "log2",
    "median",
    "printf",
    "quote",
    "randomblob",
    "strftime",
    "string_agg",
    "time",
    "timediff",
    "total",
    "typeof",
    "unhex",
    "unicode",
    "unistr",
    "unixepoch",
    "unlikely",
    "zeroblob",
];

/// PostgreSQL only.
const POSTGRES: &[&str] = &[
    "age",
    "any_value",
    "array",
    "array_agg",
    "array_append",
    "array_cat",
    "array_dims",
    "array_fill",
    "array_length",
    "array_lower",
    "array_ndims",
    "array_position",
    "array_positions",
    "array_prepend",
    "array_remove",
    "array_replace",
    "array_to_json",
    "array_to_string",
    "array_upper",
    "ascii",
    "bit_and",
    "bit_length",
    "bit_or",
    "bit_xor",
    "bool",
    "bool_and",
    "bool_or",
    "btrim",
    "cardinality",
    "casefold",
    "cbrt",
    "char_length",
    "character_length",
    "chr",
    "clock_timestamp",
    "corr",
    "cot",
    "covar_pop",
    "covar_samp",
    "date",
    "date_add",
    "date_bin",
    "date_part",
    "date_subtract",
    "date_trunc",
    "decode",
    "div",
    "encode",
    "every",
    "extract",
    "factorial",
    "float4",
    "float8",
    "gcd",
    "gen_random_uuid",
    "generate_series",
    "generate_subscripts",
    "greatest",
    "initcap",
    "int2",
    "int4",
    "int8",
    "interval",
    "isfinite",
    "json_agg",
    "json_array_elements",
    "json_array_elements_text",
    "json_array_length",
    "json_build_array",
    "json_build_object",
    "json_each",
    "json_each_text",
    "json_extract_path",
    "json_extract_path_text",
    "json_object",
    "json_object_agg",
    "json_object_keys",
    "json_populate_record",
    "json_populate_recordset",
    "json_strip_nulls",
    "json_to_record",
    "json_to_recordset",
    "json_typeof",
    "jsonb_agg",
    "jsonb_array_elements",
    "jsonb_array_elements_text",
    "jsonb_array_length",
    "jsonb_build_array",
    "jsonb_build_object",
    "jsonb_each",
    "jsonb_each_text",
    "jsonb_extract_path",
    "jsonb_extract_path_text",
    "jsonb_insert",
    "jsonb_object",
    "jsonb_object_agg",
    "jsonb_object_keys",
    "jsonb_path_exists",
    "jsonb_path_match",
    "jsonb_path_query",
    "jsonb_path_query_array",
    "jsonb_path_query_first",
    "jsonb_populate_record",
    "jsonb_populate_recordset",
    "jsonb_pretty",
    "jsonb_set",
    "jsonb_set_lax",
    "jsonb_strip_nulls",
    "jsonb_to_record",
    "jsonb_to_recordset",
    "jsonb_typeof",
    "justify_days",
    "justify_hours",
    "justify_interval",
    "lcm",
    "least",
    "left",
    "localtime",
    "localtimestamp",
    "lpad",
    "make_date",
    "make_interval",
    "make_time",
    "make_timestamp",
    "make_timestamptz",
    "md5",
    "min_scale",
    "mode",
    "now",
    "num_nonnulls",
    "num_nulls",
    "numeric",
    "overlay",
    "percentile_cont",
    "percentile_disc",
    "pg_sleep",
    "pg_typeof",
    "position",
    "quote_ident",
    "quote_literal",
    "quote_nullable",
    "regexp_count",
    "regexp_instr",
    "regexp_like",
    "regexp_match",
    "regexp_matches",
    "regexp_replace",
    "regexp_split_to_array",
    "regexp_split_to_table",
    "regexp_substr",
    "regr_avgx",
    "regr_avgy",
    "regr_count",
    "regr_intercept",
    "regr_r2",
    "regr_slope",
    "regr_sxx",
    "regr_sxy",
    "regr_syy",
    "repeat",
    "reverse",
    "right",
    "row",
    "row_to_json",
    "rpad",
    "scale",
    "sha224",
    "sha256",
    "sha384",
    "sha512",
    "split_part",
    "starts_with",
    "statement_timestamp",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "string_agg",
    "string_to_array",
    "string_to_table",
    "strpos",
    "text",
    "time",
    "timestamp",
    "timestamptz",
    "timezone",
    "to_char",
    "to_date",
    "to_hex",
    "to_json",
    "to_jsonb",
    "to_number",
    "to_timestamp",
    "transaction_timestamp",
    "translate",
    "trim_scale",
    "unistr",
    "unnest",
    "var_pop",
    "var_samp",
    "varchar",
    "variance",
    "width_bucket",
];

/// Table-valued functions SQLite may use in `FROM` without being named in `--db-tables`.
const SQLITE_TABLE_FUNCTIONS: &[&str] = &["json_each", "json_tree", "jsonb_each", "jsonb_tree"];

/// True when `name` (lowercase, bare) is on `dialect`'s list of scalar, aggregate and
/// window functions.
pub fn is_listed(dialect: Dialect, name: &str) -> bool {
    COMMON.binary_search(&name).is_ok()
        || match dialect {
            Dialect::Sqlite => SQLITE.binary_search(&name).is_ok(),
            Dialect::Postgres => POSTGRES.binary_search(&name).is_ok(),
        }
}

/// True when `name` (lowercase, bare) may be used as a table in `FROM` without being
/// named in `--db-tables`.
pub fn is_listed_table_function(dialect: Dialect, name: &str) -> bool {
    match dialect {
        Dialect::Sqlite => SQLITE_TABLE_FUNCTIONS.binary_search(&name).is_ok(),
        // Set-returning functions of the list: generate_series, unnest, jsonb_each, ...
        Dialect::Postgres => is_listed(dialect, name),
    }
}

/// Functions refused whatever the capability, by lowercase name or name prefix, with why.
const ALWAYS_REFUSED: &[(&str, bool, &str)] = &[
    // (name, is a prefix, why)
    ("pg_read_file", false, FILES),
    ("pg_read_binary_file", false, FILES),
    ("pg_ls_", true, FILES),
    ("pg_stat_file", false, FILES),
    ("pg_file_", true, FILES),
    ("pg_logdir_ls", false, FILES),
    ("lo_", true, FILES),
    ("loread", false, FILES),
    ("lowrite", false, FILES),
    ("dblink", true, SERVERS),
    ("set_config", false, SETTINGS),
    ("pg_reload_conf", false, SETTINGS),
    ("pg_rotate_logfile", false, SETTINGS),
    ("pg_terminate_backend", false, SETTINGS),
    ("pg_cancel_backend", false, SETTINGS),
    ("pg_signal_backend", false, SETTINGS),
    ("pg_log_backend_memory_contexts", false, SETTINGS),
    ("pg_promote", false, SETTINGS),
    ("pg_switch_wal", false, SETTINGS),
    ("pg_create_restore_point", false, SETTINGS),
    ("pg_backup_", true, SETTINGS),
    ("pg_start_backup", false, SETTINGS),
    ("pg_stop_backup", false, SETTINGS),
    ("pg_stat_reset", true, SETTINGS),
    ("pg_create_", true, REPLICATION),
    ("pg_drop_replication_slot", false, REPLICATION),
    ("pg_copy_", true, REPLICATION),
    ("pg_replication_", true, REPLICATION),
    ("pg_logical_", true, REPLICATION),
    ("pg_wal_replay_", true, REPLICATION),
    ("pg_advisory_lock", true, LOCKS),
    ("pg_advisory_xact_lock", true, LOCKS),
    ("pg_try_advisory_lock", true, LOCKS),
    ("pg_try_advisory_xact_lock", true, LOCKS),
    ("query_to_xml", true, SQL_TEXT),
    ("cursor_to_xml", true, SQL_TEXT),
    ("table_to_xml", true, SQL_TEXT),
    ("schema_to_xml", true, SQL_TEXT),
    ("database_to_xml", true, SQL_TEXT),
    ("ts_stat", false, SQL_TEXT),
    ("ts_rewrite", false, SQL_TEXT),
    ("load_extension", false, NATIVE),
    ("readfile", false, FILES),
    ("writefile", false, FILES),
    ("edit", false, FILES),
    ("fts3_tokenizer", false, NATIVE),
    ("zipfile", true, FILES),
    ("sqlar_", true, FILES),
];
const FILES: &str = "it reads or writes files on the database server";
const SERVERS: &str = "it connects to other database servers";
const SETTINGS: &str = "it changes server settings, statistics or other sessions";
const REPLICATION: &str = "it creates, changes or writes to replication slots and the write-ahead log";
const LOCKS: &str = "it takes locks that outlive the query";
const SQL_TEXT: &str = "it runs SQL given as text, which metaexec cannot check";
const NATIVE: &str = "it loads native code into the database";

/// Why `name` (lowercase, bare) is refused whatever the capability, if it is.
pub fn always_refused(name: &str) -> Option<&'static str> {
    ALWAYS_REFUSED
        .iter()
        .find(|(n, prefix, _)| if *prefix { name.starts_with(n) } else { name == *n })
        .map(|(_, _, why)| *why)
}

/// True for a relation that is a system catalog, settings view or catalog-reading
/// table-valued function of `dialect` (`parts`: the lowercase name, split on dots).
/// These are readable only when named in `--db-tables`.
pub fn is_catalog(dialect: Dialect, parts: &[String]) -> bool {
    let Some((bare, schemas)) = parts.split_last() else { return false };
    match dialect {
        // `sqlite_master`, `sqlite_schema`, `sqlite_temp_master`, `sqlite_sequence`,
        // `sqlite_stat1`, `sqlite_dbpage`, `sqlite_stmt` in any schema; the eponymous
        // `pragma_*` virtual tables and `dbstat` also work without parentheses.
        Dialect::Sqlite => bare.starts_with("sqlite_") || bare.starts_with("pragma_") || bare == "dbstat",
        // A bare `pg_*` name finds `pg_catalog` first (it is searched before any schema
        // of the search path unless placed explicitly); schemas `pg_catalog`, `pg_toast`,
        // `pg_temp_*` and `information_schema` hold catalogs only.
        Dialect::Postgres => match schemas.last() {
            None => bare.starts_with("pg_"),
            Some(schema) => schema.starts_with("pg_") || schema == "information_schema",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_sorted_lowercase_and_disjoint_from_the_refusals() {
        for list in [COMMON, SQLITE, POSTGRES, SQLITE_TABLE_FUNCTIONS] {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "not sorted: {list:?}");
            for name in list {
                assert_eq!(*name, name.to_lowercase());
                assert!(always_refused(name).is_none(), "{name} is both listed and refused");
            }
        }
        for name in COMMON {
            assert!(!SQLITE.contains(name) && !POSTGRES.contains(name), "{name} is listed twice");
        }
    }

    #[test]
    fn lists_per_dialect() {
        assert!(is_listed(Dialect::Sqlite, "printf") && !is_listed(Dialect::Postgres, "printf"));
        assert!(is_listed(Dialect::Postgres, "date_trunc") && !is_listed(Dialect::Sqlite, "date_trunc"));
        assert!(!is_listed(Dialect::Postgres, "current_setting"));
        assert!(!is_listed(Dialect::Postgres, "pg_stat_reset"));
        assert!(!is_listed(Dialect::Sqlite, "sqlite_version"));
        assert!(is_listed_table_function(Dialect::Sqlite, "json_each"));
        assert!(!is_listed_table_function(Dialect::Sqlite, "pragma_table_info"));
        assert!(is_listed_table_function(Dialect::Postgres, "generate_series"));
        assert_eq!(always_refused("pg_create_physical_replication_slot"), Some(REPLICATION));
        assert_eq!(always_refused("pg_logical_emit_message"), Some(REPLICATION));
        assert!(always_refused("sum").is_none());
    }

    #[test]
    fn catalogs() {
        let parts = |s: &str| s.split('.').map(str::to_owned).collect::<Vec<_>>();
        for name in ["sqlite_master", "main.sqlite_schema", "temp.sqlite_temp_master", "pragma_database_list", "dbstat"]
        {
            assert!(is_catalog(Dialect::Sqlite, &parts(name)), "{name}");
        }
        for name in ["pg_authid", "pg_catalog.pg_class", "information_schema.tables", "pg_toast.x", "pg_settings"] {
            assert!(is_catalog(Dialect::Postgres, &parts(name)), "{name}");
        }
        for name in ["loans", "public.pg_like_but_mine", "main.loans"] {
            assert!(!is_catalog(Dialect::Postgres, &parts(name)) && !is_catalog(Dialect::Sqlite, &parts(name)));
        }
        assert!(!is_catalog(Dialect::Sqlite, &[]));
    }
}
