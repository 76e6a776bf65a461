//! The server's stored query trees (`pg_node_tree` text, as in `pg_rewrite.ev_action`),
//! read for the little a gateway needs from them.

use std::collections::HashMap;

/// Where each column of a view comes from, read from its `_RETURN` rule (the stored
/// query tree): the top-level target list's `resno`, `resorigtbl` and `resorigcol`.
/// Columns that are expressions have no origin.
pub fn view_origins(tree: &str) -> HashMap<i16, (u32, i16)> {
    let bytes = tree.as_bytes();
    // Depth of each byte, skipping backslash-escaped characters.
    let mut depth = 0i32;
    let mut list_start = None;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'{' | b'(' => depth += 1,
            b'}' | b')' => depth -= 1,
            // Inside the outermost list and its QUERY node.
            b':' if depth == 2 && tree[i..].starts_with(":targetList (") => {
                list_start = Some(i + ":targetList (".len());
                break;
            }
            _ => {}
        }
        i += 1;
    }
    let mut out = HashMap::new();
    let Some(start) = list_start else { return out };
    // Each top-level {TARGETENTRY ...} of that list.
    let (mut level, mut entry_start, mut i) = (0i32, None, start);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'{' | b'(' => {
                if level == 0 {
                    entry_start = Some(i);
                }
                level += 1;
            }
            b'}' | b')' => {
                level -= 1;
                if level < 0 {
                    break;
                }
                if level == 0
                    && let Some(s) = entry_start.take()
                {
                    let entry = &tree[s..=i];
                    // The entry's own fields follow its expression, so the last ones count.
                    let field = |name: &str| -> Option<i64> {
                        let at = entry.rfind(name)? + name.len();
                        entry[at..].split_whitespace().next()?.trim_end_matches('}').parse().ok()
                    };
                    if entry.starts_with("{TARGETENTRY")
                        && let (Some(resno), Some(tbl), Some(col)) =
                            (field(":resno "), field(":resorigtbl "), field(":resorigcol "))
                        && tbl != 0
                    {
                        out.insert(resno as i16, (tbl as u32, col as i16));
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_columns_lead_to_their_base_columns() {
        // Shape of a PostgreSQL 15 `_RETURN` rule (trimmed): a subquery in the range
        // table has its own target list, which must not be confused with the view's.
        let tree = "({QUERY :commandType 1 :rtable ({RANGETBLENTRY :subquery {QUERY :targetList \
            ({TARGETENTRY :expr {VAR :varno 1} :resno 1 :resname x :resorigtbl 999 :resorigcol 9 :resjunk false})}}) \
            :targetList ({TARGETENTRY :expr {VAR :varno 1 :varattno 1} :resno 1 :resname id :ressortgroupref 0 \
            :resorigtbl 16390 :resorigcol 1 :resjunk false} {TARGETENTRY :expr {FUNCEXPR :args ({VAR :varattno 2})} \
            :resno 2 :resname lower :ressortgroupref 0 :resorigtbl 0 :resorigcol 0 :resjunk false} \
            {TARGETENTRY :expr {VAR :varattno 3} :resno 3 :resname se\\ cret :ressortgroupref 0 :resorigtbl 16390 \
            :resorigcol 5 :resjunk false}) :override 0})";
        let origins = view_origins(tree);
        assert_eq!(origins.len(), 2, "{origins:?}");
        assert_eq!(origins[&1], (16390, 1));
        assert_eq!(origins[&3], (16390, 5));
        assert!(view_origins("garbage {{{").is_empty());
    }
}
