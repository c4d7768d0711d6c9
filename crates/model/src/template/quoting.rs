//! Quoting filters: a value from a run's conf (or anywhere else) reaches a shell line or SQL
//! only through one of these, as one shell word or one SQL literal, whatever it holds.
//!
//! - `shell_quote`: one POSIX shell word in single quotes (`'` written as `'\''`); a list
//!   becomes one word per element, space-separated.
//! - `sql_string`: a ClickHouse string literal (`'`, with `\` and `'` escaped).
//! - `sql_identifier`: a ClickHouse identifier in backquotes (`` ` `` and `\` escaped),
//!   `db.table` as two quoted parts.

use minijinja::value::{Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind};

pub fn register(env: &mut Environment<'static>) {
    env.add_filter("shell_quote", shell_quote);
    env.add_filter("sql_string", sql_string);
    env.add_filter("sql_identifier", sql_identifier);
}

/// The names of the quoting filters, by where their output goes.
pub const SHELL_FILTERS: &[&str] = &["shell_quote"];
pub const SQL_FILTERS: &[&str] = &["sql_string", "sql_identifier"];

/// A value as plain text: strings as they are, other scalars as JSON would write them.
fn text_of(value: &Value) -> Result<String, Error> {
    match value.kind() {
        ValueKind::String => Ok(value.as_str().unwrap_or_default().to_owned()),
        ValueKind::Number | ValueKind::Bool => Ok(value.to_string()),
        ValueKind::None => Ok(String::new()),
        other => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("cannot quote a {other} as one value; quote its elements"),
        )),
    }
}

pub fn quote_shell_word(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn shell_quote(value: Value) -> Result<String, Error> {
    if value.kind() == ValueKind::Seq {
        let words: Result<Vec<String>, Error> = value
            .try_iter()?
            .map(|item| text_of(&item).map(|t| quote_shell_word(&t)))
            .collect();
        return Ok(words?.join(" "));
    }
    Ok(quote_shell_word(&text_of(&value)?))
}

pub fn quote_sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn sql_string(value: Value) -> Result<String, Error> {
    Ok(quote_sql_string(&text_of(&value)?))
}

fn sql_identifier(value: Value) -> Result<String, Error> {
    let text = text_of(&value)?;
    if text.is_empty() || text.split('.').any(str::is_empty) || text.split('.').count() > 2 {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("`{text}` is not an identifier (`name` or `database.name`)"),
        ));
    }
    Ok(text
        .split('.')
        .map(|part| format!("`{}`", part.replace('\\', "\\\\").replace('`', "\\`")))
        .collect::<Vec<_>>()
        .join("."))
}

/// The params (`params.NAME`, `params["NAME"]`) that an expression `{{ … }}` of `source`
/// renders without a quoting filter from `quoting` as its last step, with the byte offset of
/// each mention: what `sluice dags validate` warns about in a shell line or SQL.
pub fn unquoted_params(source: &str, quoting: &[&str]) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    let mut rest = 0;
    while let Some(open) = source[rest..].find("{{").map(|i| rest + i) {
        let Some(close) = source[open..].find("}}").map(|i| open + i) else {
            break;
        };
        let expression =
            source[open + 2..close].trim_matches(|c: char| c == '-' || c.is_whitespace());
        let split = expression.rsplit_once('|');
        let last_filter = split
            .map(|(_, filter)| filter.trim())
            .map(|f| f.split('(').next().unwrap_or(f).trim());
        // A filter binds tighter than `~`: in `a ~ b | shell_quote` only `b` is quoted.
        let whole = split.is_some_and(|(value, _)| !has_top_level_concat(value));
        // Quoting inside quotes undoes itself: `'{{ x | sql_string }}'` ends the literal.
        let before = source[..open].trim_end_matches([' ', '\t']);
        let inside_quotes = before.ends_with(['\'', '"']);
        let quoted = last_filter.is_some_and(|f| quoting.contains(&f)) && whole && !inside_quotes;
        if !quoted {
            for (offset, name) in params_in(&source[open + 2..close]) {
                found.push((name, open + 2 + offset));
            }
        }
        rest = close + 2;
    }
    found
}

/// Whether an expression joins parts with `~` outside parentheses and string literals.
fn has_top_level_concat(expression: &str) -> bool {
    let (mut depth, mut quote) = (0i32, None);
    for c in expression.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[') => depth += 1,
            (None, ')' | ']') => depth -= 1,
            (None, '~') if depth == 0 => return true,
            _ => {}
        }
    }
    false
}

/// `params.NAME` and `params["NAME"]` / `params['NAME']` in an expression.
fn params_in(expression: &str) -> Vec<(usize, String)> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut names = Vec::new();
    for (at, _) in expression.match_indices("params") {
        if expression[..at].chars().next_back().is_some_and(is_word) {
            continue;
        }
        let after = &expression[at + "params".len()..];
        let name: String = if let Some(member) = after.strip_prefix('.') {
            member.chars().take_while(|c| is_word(*c)).collect()
        } else if let Some(index) = after.strip_prefix('[') {
            index
                .trim_start()
                .trim_start_matches(['"', '\''])
                .chars()
                .take_while(|c| is_word(*c))
                .collect()
        } else {
            continue;
        };
        if !name.is_empty() {
            names.push((at, name));
        }
    }
    names
}
