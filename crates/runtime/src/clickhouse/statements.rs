//! Splitting a `clickhouse` task's SQL into statements: on `;` outside string literals,
//! quoted identifiers and comments (ClickHouse's HTTP interface takes one statement per
//! request).

/// The statements of a script, trimmed, empty ones (and comment-only ones) dropped.
pub fn split(sql: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' | '`' => {
                current.push(c);
                // A quoted run ends at the same quote; backslash escapes and doubled quotes
                // (`''`) both keep it open.
                while let Some(q) = chars.next() {
                    current.push(q);
                    if q == '\\' {
                        if let Some(escaped) = chars.next() {
                            current.push(escaped);
                        }
                    } else if q == c {
                        if chars.peek() == Some(&c) {
                            current.push(c);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                for l in chars.by_ref() {
                    if l == '\n' {
                        current.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut previous = ' ';
                for b in chars.by_ref() {
                    if previous == '*' && b == '/' {
                        break;
                    }
                    previous = b;
                }
                current.push(' ');
            }
            ';' => push(&mut statements, &mut current),
            _ => current.push(c),
        }
    }
    push(&mut statements, &mut current);
    statements
}

fn push(statements: &mut Vec<String>, current: &mut String) {
    let statement = current.trim();
    if !statement.is_empty() {
        statements.push(statement.to_owned());
    }
    current.clear();
}

/// Whether a statement answers with rows (its rows can become the task's output).
pub fn returns_rows(statement: &str) -> bool {
    let first = statement
        .split(|c: char| c.is_whitespace() || c == '(')
        .find(|w| !w.is_empty())
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(
        first.as_str(),
        "SELECT" | "WITH" | "SHOW" | "DESCRIBE" | "DESC" | "EXISTS" | "EXPLAIN"
    )
}

/// The table (`database`, `table`) a mutation statement (`ALTER TABLE … DELETE|UPDATE`)
/// changes: mutations run in the background on the server, and the executor waits for
/// them so the next statement (the insert of delete-then-insert) and the readers after the
/// task see the interval replaced, on every server version (`mutations_sync` is newer).
pub fn mutated_table(statement: &str) -> Option<(Option<String>, String)> {
    let words: Vec<&str> = statement.split_whitespace().collect();
    let [alter, table_kw, name, ..] = words.as_slice() else {
        return None;
    };
    if !alter.eq_ignore_ascii_case("ALTER") || !table_kw.eq_ignore_ascii_case("TABLE") {
        return None;
    }
    let is_mutation = words[3..]
        .iter()
        .take_while(|w| !w.starts_with('\''))
        .any(|w| w.eq_ignore_ascii_case("DELETE") || w.eq_ignore_ascii_case("UPDATE"));
    if !is_mutation {
        return None;
    }
    let unquote = |s: &str| s.trim_matches(|c| c == '`' || c == '"').to_owned();
    Some(match name.split_once('.') {
        Some((database, table)) => (Some(unquote(database)), unquote(table)),
        None => (None, unquote(name)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        let sql = "ALTER TABLE t DELETE WHERE s = 'a;b' ;\n\
                   -- a comment; with a semicolon\n\
                   INSERT INTO `we;ird` SELECT \"x;y\", 'it''s; fine', 'back\\'slash;' /* c; */ FROM u;\n\
                   ;  \n SELECT 1";
        assert_eq!(
            split(sql),
            vec![
                "ALTER TABLE t DELETE WHERE s = 'a;b'".to_owned(),
                "INSERT INTO `we;ird` SELECT \"x;y\", 'it''s; fine', 'back\\'slash;'   FROM u"
                    .to_owned(),
                "SELECT 1".to_owned(),
            ]
        );
    }

    #[test]
    fn comment_only_scripts_have_no_statements() {
        assert!(split("-- nothing\n/* at all */ ;").is_empty());
        assert!(split("").is_empty());
    }

    #[test]
    fn knows_which_statements_return_rows() {
        assert!(returns_rows("select count() from t"));
        assert!(returns_rows("WITH x AS (SELECT 1) SELECT * FROM x"));
        assert!(returns_rows("(SELECT 1)"));
        assert!(!returns_rows("INSERT INTO t SELECT 1"));
        assert!(!returns_rows("ALTER TABLE t DELETE WHERE 1"));
    }

    #[test]
    fn finds_the_table_a_mutation_changes() {
        assert_eq!(
            mutated_table("ALTER TABLE agg_15m DELETE WHERE window_start = '2025-09-01'"),
            Some((None, "agg_15m".into()))
        );
        assert_eq!(
            mutated_table("alter table `an`.`agg` update n = 1 where 1"),
            Some((Some("an".into()), "agg".into()))
        );
        assert_eq!(
            mutated_table("ALTER TABLE agg REPLACE PARTITION 'DELETE' FROM s"),
            None
        );
        assert_eq!(mutated_table("ALTER TABLE agg DROP PARTITION 1"), None);
        assert_eq!(mutated_table("INSERT INTO agg SELECT 1"), None);
    }
}
