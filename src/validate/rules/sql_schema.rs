//! The SQL a script passes to `metaexec.db.query` as a literal (or through a variable
//! assigned one literal), parsed once per script for the three SQL rules.

use super::{Call, Context};
use crate::validate::sql::{References, references};

/// One query call with literal SQL.
pub struct LiteralQuery<'c, 'a> {
    /// The call.
    pub call: &'c Call<'a>,
    /// What the SQL refers to, or the parser's complaint.
    pub refs: &'c Result<References, String>,
}

/// Every query call whose SQL the script spells out.
pub fn literal_queries<'c, 'a>(cx: &'c Context<'a>) -> Vec<LiteralQuery<'c, 'a>> {
    let parsed = cx.literal_sql.get_or_init(|| {
        cx.calls
            .iter()
            .enumerate()
            .filter(|(_, call)| call.callee.as_deref().is_some_and(|c| super::DB_QUERY_FUNCTIONS.contains(&c)))
            .filter_map(|(i, call)| Some((i, references(&cx.semantic.static_string(call.arg(0, "sql")?)?))))
            .collect()
    });
    parsed.iter().map(|(i, refs)| LiteralQuery { call: &cx.calls[*i], refs }).collect()
}
