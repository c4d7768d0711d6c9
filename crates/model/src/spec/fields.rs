//! The decoding toolkit: typed readers over the spanned YAML tree that report every
//! mismatch as a located diagnostic and carry on, so one pass finds every problem.

use std::collections::{BTreeMap, HashMap};

use super::diagnostic::{Diagnostic, Location};
use super::duration::Duration;
use super::suggest;
use super::yaml::{Node, NodeKind, ScalarStyle};

/// Where each decoded value came from, keyed by its path (`tasks.load.depends_on[0]`).
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    values: HashMap<String, Location>,
    nodes: HashMap<String, (ScalarStyle, Location)>,
    keys: HashMap<String, Location>,
}

impl SourceMap {
    /// The location of the value at `path`.
    pub fn value(&self, path: &str) -> Option<Location> {
        self.values.get(path).copied()
    }

    /// The location of the mapping key that introduced `path` (e.g. a task id).
    pub fn key(&self, path: &str) -> Option<Location> {
        self.keys.get(path).copied()
    }

    /// The style of the scalar at `path`, for mapping template offsets back to the file.
    pub fn scalar_style(&self, path: &str) -> Option<ScalarStyle> {
        self.nodes.get(path).map(|(style, _)| *style)
    }

    /// The best location for `path`: its value, else its key, else the nearest parent's.
    pub fn nearest(&self, path: &str) -> Option<Location> {
        let mut path = path;
        loop {
            if let Some(location) = self.value(path).or_else(|| self.key(path)) {
                return Some(location);
            }
            path = &path[..path.rfind(['.', '['])?];
        }
    }
}

pub fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

pub struct Decoder {
    pub diagnostics: Vec<Diagnostic>,
    pub spans: SourceMap,
}

/// The entries of one YAML mapping, read field by field. Fields never asked for are
/// reported as unknown by [`Fields::finish`], with the asked-for names as suggestions.
pub struct Fields<'n> {
    node: &'n Node,
    entries: &'n [(Node, Node)],
    used: Vec<bool>,
    asked: Vec<&'static str>,
    path: String,
    what: String,
}

impl Decoder {
    pub fn new() -> Self {
        Decoder {
            diagnostics: Vec::new(),
            spans: SourceMap::default(),
        }
    }

    pub fn report(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn record(&mut self, path: &str, node: &Node) {
        self.spans.values.insert(path.to_owned(), node.location);
        if let NodeKind::Scalar(s) = &node.kind {
            self.spans
                .nodes
                .insert(path.to_owned(), (s.style, node.location));
        }
    }

    fn type_error(&mut self, node: &Node, path: &str, expected: &str) {
        let found = match node.as_scalar() {
            Some(s) if s.value.len() <= 40 && !s.value.contains('\n') => format!("`{}`", s.value),
            _ => node.kind_name().to_owned(),
        };
        let subject = if path.is_empty() {
            "a DAG file".to_owned()
        } else {
            format!("`{path}`")
        };
        self.report(
            Diagnostic::error(
                "spec::wrong-type",
                format!("{subject} must be {expected}, found {found}"),
            )
            .at(node.location, format!("expected {expected}")),
        );
    }

    /// Opens a mapping; `what` names it in messages ("task `load`").
    pub fn fields<'n>(&mut self, node: &'n Node, path: &str, what: &str) -> Option<Fields<'n>> {
        self.record(path, node);
        match &node.kind {
            NodeKind::Map(entries) => {
                for (key, _) in entries {
                    if key.as_scalar().is_none() {
                        self.report(
                            Diagnostic::error("spec::bad-key", "keys must be plain names")
                                .at(key.location, "not a name"),
                        );
                    }
                }
                Some(Fields {
                    node,
                    entries,
                    used: vec![false; entries.len()],
                    asked: Vec::new(),
                    path: path.to_owned(),
                    what: what.to_owned(),
                })
            }
            _ => {
                self.type_error(node, path, "a mapping");
                None
            }
        }
    }

    /// Any non-null scalar, as text.
    pub fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        self.record(path, node);
        match &node.kind {
            NodeKind::Scalar(s) => Some(s.value.clone()),
            _ => {
                self.type_error(node, path, "a string");
                None
            }
        }
    }

    pub fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        self.record(path, node);
        match node.as_scalar().filter(|s| s.style == ScalarStyle::Plain) {
            Some(s) if matches!(s.value.as_str(), "true" | "True" | "TRUE") => Some(true),
            Some(s) if matches!(s.value.as_str(), "false" | "False" | "FALSE") => Some(false),
            Some(s) if matches!(s.value.as_str(), "yes" | "no" | "on" | "off" | "y" | "n") => {
                self.report(
                    Diagnostic::error(
                        "spec::wrong-type",
                        format!("`{path}` must be true or false, found `{}`", s.value),
                    )
                    .at(node.location, "not a boolean in YAML 1.2")
                    .help("YAML 1.2 reads yes/no/on/off as strings; write true or false"),
                );
                None
            }
            _ => {
                self.type_error(node, path, "true or false");
                None
            }
        }
    }

    pub fn unsigned(&mut self, node: &Node, path: &str) -> Option<u64> {
        self.record(path, node);
        let parsed = node
            .as_scalar()
            .filter(|s| s.style == ScalarStyle::Plain)
            .and_then(|s| s.value.replace('_', "").parse::<u64>().ok());
        if parsed.is_none() {
            self.type_error(node, path, "a whole number ≥ 0");
        }
        parsed
    }

    pub fn u32(&mut self, node: &Node, path: &str) -> Option<u32> {
        let value = self.unsigned(node, path)?;
        match u32::try_from(value) {
            Ok(v) => Some(v),
            Err(_) => {
                self.report(
                    Diagnostic::error("spec::out-of-range", format!("`{path}` is too large"))
                        .at(node.location, format!("at most {}", u32::MAX)),
                );
                None
            }
        }
    }

    pub fn integer_list(&mut self, node: &Node, path: &str) -> Option<Vec<i32>> {
        self.list(node, path, |d, item, p| {
            let value = item
                .as_scalar()
                .filter(|s| s.style == ScalarStyle::Plain)
                .and_then(|s| s.value.parse::<i32>().ok());
            if value.is_none() {
                d.type_error(item, p, "an integer");
            }
            value
        })
    }

    pub fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        let text = self.string(node, path)?;
        match text.parse::<Duration>() {
            Ok(d) => Some(d),
            Err(e) => {
                self.report(
                    Diagnostic::error("spec::bad-duration", format!("`{path}` is `{text}`: {e}"))
                        .at(node.location, "not a duration")
                        .help(e.hint()),
                );
                None
            }
        }
    }

    /// One of a fixed set of names.
    pub fn choice<T: Copy>(&mut self, node: &Node, path: &str, options: &[(&str, T)]) -> Option<T> {
        let text = self.string(node, path)?;
        if let Some((_, value)) = options.iter().find(|(name, _)| *name == text) {
            return Some(*value);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let hint = match suggest::closest(&text, names.iter().copied()) {
            Some(near) => format!("did you mean `{near}`?"),
            None => format!("choose one of: {}", names.join(", ")),
        };
        self.report(
            Diagnostic::error(
                "spec::unknown-value",
                format!("`{path}` cannot be `{text}`"),
            )
            .at(node.location, "unknown value")
            .help(hint),
        );
        None
    }

    pub fn list<T>(
        &mut self,
        node: &Node,
        path: &str,
        mut item: impl FnMut(&mut Self, &Node, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        self.record(path, node);
        let NodeKind::Seq(items) = &node.kind else {
            self.type_error(node, path, "a list");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, node) in items.iter().enumerate() {
            match item(self, node, &format!("{path}[{i}]")) {
                Some(v) => out.push(v),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    pub fn string_list(&mut self, node: &Node, path: &str) -> Option<Vec<String>> {
        self.list(node, path, |d, item, p| d.string(item, p))
    }

    /// A mapping with free-form keys.
    pub fn map<T>(
        &mut self,
        node: &Node,
        path: &str,
        mut value: impl FnMut(&mut Self, &Node, &str) -> Option<T>,
    ) -> Option<BTreeMap<String, T>> {
        let fields = self.fields(node, path, path)?;
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (key, node) in fields.entries {
            let Some(name) = key.as_scalar().map(|s| s.value.clone()) else {
                ok = false;
                continue;
            };
            let child = join(path, &name);
            self.spans.keys.insert(child.clone(), key.location);
            match value(self, node, &child) {
                Some(v) => {
                    out.insert(name, v);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    pub fn string_map(&mut self, node: &Node, path: &str) -> Option<BTreeMap<String, String>> {
        self.map(node, path, |d, value, p| d.string(value, p))
    }

    /// Any YAML value as JSON, plain scalars typed by the YAML 1.2 core schema.
    pub fn json(&mut self, node: &Node, path: &str) -> Option<serde_json::Value> {
        use serde_json::Value;
        self.record(path, node);
        Some(match &node.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Scalar(s) if s.style != ScalarStyle::Plain => Value::String(s.value.clone()),
            NodeKind::Scalar(s) => plain_scalar_json(&s.value),
            NodeKind::Seq(_) => Value::Array(self.list(node, path, |d, item, p| d.json(item, p))?),
            NodeKind::Map(_) => Value::Object(self.json_object(node, path)?),
        })
    }

    pub fn json_object(
        &mut self,
        node: &Node,
        path: &str,
    ) -> Option<serde_json::Map<String, serde_json::Value>> {
        Some(
            self.map(node, path, |d, value, p| d.json(value, p))?
                .into_iter()
                .collect(),
        )
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

fn plain_scalar_json(text: &str) -> serde_json::Value {
    use serde_json::Value;
    match text {
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        _ => {
            if let Ok(i) = text.parse::<i64>() {
                Value::from(i)
            } else if let Some(f) = text
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && text.chars().any(|c| c.is_ascii_digit()))
            {
                Value::from(f)
            } else {
                Value::String(text.to_owned())
            }
        }
    }
}

impl<'n> Fields<'n> {
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn location(&self) -> Location {
        self.node.location
    }

    /// The value of `key`, if present and not null; marks the key as known.
    pub fn get(&mut self, key: &'static str) -> Option<&'n Node> {
        self.asked.push(key);
        let index = self
            .entries
            .iter()
            .position(|(k, _)| k.as_scalar().is_some_and(|s| s.value == key))?;
        self.used[index] = true;
        let value = &self.entries[index].1;
        (value.kind != NodeKind::Null).then_some(value)
    }

    /// Like [`Fields::get`], reporting a missing or null field.
    pub fn required(&mut self, decoder: &mut Decoder, key: &'static str) -> Option<&'n Node> {
        let value = self.get(key);
        if value.is_none() {
            decoder.report(
                Diagnostic::error(
                    "spec::missing-field",
                    format!("{} is missing the field `{key}`", self.what),
                )
                .at(self.key_or_start(key), format!("`{key}` is required here"))
                .help(format!("add `{key}:` to {}", self.what)),
            );
        }
        value
    }

    /// Reads `key` with `read` when present; the child path is passed to `read`.
    pub fn read<T>(
        &mut self,
        decoder: &mut Decoder,
        key: &'static str,
        read: impl FnOnce(&mut Decoder, &Node, &str) -> Option<T>,
    ) -> Option<T> {
        let node = self.get(key)?;
        read(decoder, node, &join(&self.path, key))
    }

    /// Reads a required field.
    pub fn read_required<T>(
        &mut self,
        decoder: &mut Decoder,
        key: &'static str,
        read: impl FnOnce(&mut Decoder, &Node, &str) -> Option<T>,
    ) -> Option<T> {
        let node = self.required(decoder, key)?;
        read(decoder, node, &join(&self.path, key))
    }

    fn key_or_start(&self, key: &str) -> Location {
        self.entries
            .iter()
            .find(|(k, _)| k.as_scalar().is_some_and(|s| s.value == key))
            .map_or(
                Location {
                    len: 0,
                    ..self.node.location
                },
                |(k, _)| k.location,
            )
    }

    /// The keys that were never asked for.
    pub fn unknown(&self) -> impl Iterator<Item = &'n Node> + '_ {
        self.entries
            .iter()
            .zip(&self.used)
            .filter(|(_, used)| !**used)
            .map(|((k, _), _)| k)
    }

    /// The names asked for so far: the fields this mapping knows.
    pub fn known(&self) -> &[&'static str] {
        &self.asked
    }

    /// Reports every key never asked for, with a did-you-mean hint.
    pub fn finish(self, decoder: &mut Decoder) {
        self.finish_with(decoder, |_| None);
    }

    /// Like [`Fields::finish`]; `elsewhere` may explain a key that belongs somewhere else.
    pub fn finish_with(self, decoder: &mut Decoder, elsewhere: impl Fn(&str) -> Option<String>) {
        for key in self.unknown() {
            let Some(name) = key.as_scalar().map(|s| s.value.as_str()) else {
                continue;
            };
            let help = elsewhere(name).or_else(|| {
                Some(match suggest::closest(name, self.asked.iter().copied()) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => format!("known fields: {}", self.asked.join(", ")),
                })
            });
            decoder.report(
                Diagnostic::error(
                    "spec::unknown-field",
                    format!("unknown field `{name}` in {}", self.what),
                )
                .at(key.location, "unknown field")
                .help_opt(help),
            );
        }
    }
}
