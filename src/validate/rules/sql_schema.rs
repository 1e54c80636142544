//! The SQL a script passes to `metaexec.db.query` as a literal (or through a variable
//! assigned one literal), parsed once for the three SQL rules.

use super::{Call, Context};
use crate::validate::sql::{References, references};

/// One query call with literal SQL.
pub struct LiteralQuery<'c, 'a> {
    /// The call.
    pub call: &'c Call<'a>,
    /// What the SQL refers to, or the parser's complaint.
    pub refs: Result<References, String>,
}

/// Every query call whose SQL the script spells out.
pub fn literal_queries<'c, 'a>(cx: &'c Context<'a>) -> Vec<LiteralQuery<'c, 'a>> {
    cx.db_queries()
        .filter_map(|(call, sql)| {
            let sql = cx.semantic.static_string(sql)?;
            Some(LiteralQuery { call, refs: references(&sql) })
        })
        .collect()
}
