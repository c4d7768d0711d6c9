//! A YAML reader that keeps where every node came from.
//!
//! serde-based YAML readers stop at the first error and forget positions; DAG validation
//! needs every problem in one pass with file:line:col, so DAG files are read into this
//! spanned tree first and decoded by hand (`decode`). Aliases are expanded here under a
//! node budget, so an alias bomb ("billion laughs") is refused in microseconds instead of
//! being expanded; nesting depth is bounded so hostile input cannot exhaust the stack.

use std::collections::{HashMap, HashSet};

use saphyr_parser::{Event, Parser, ScalarStyle as ParserStyle, ScanError, Span as ParserSpan};

use super::diagnostic::{Diagnostic, Location, SourceText};

/// Deepest nesting of mappings and sequences a DAG file may have.
pub const MAX_DEPTH: usize = 64;
/// Most nodes a file may produce, counting every node an alias expands into.
pub const MAX_NODES: usize = 250_000;
/// Most bytes of scalar text a file may produce, counting every copy an alias makes: eight
/// times the largest file, so a few anchors reused widely still load, and one large anchor
/// repeated by thousands of aliases does not.
pub const MAX_EXPANDED_BYTES: usize = 8 << 20;

fn add(a: (usize, usize), b: (usize, usize)) -> (usize, usize) {
    (a.0.saturating_add(b.0), a.1.saturating_add(b.1))
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub location: Location,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Null,
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    pub value: String,
    pub style: ScalarStyle,
}

/// How a scalar was written: plain scalars are typed by the YAML 1.2 core schema,
/// quoted and block scalars are always strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarStyle {
    Plain,
    Quoted,
    /// `|` or `>` block; its text starts on the line after the indicator.
    Block,
}

impl Node {
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Null => "null",
            NodeKind::Scalar(s) if s.style != ScalarStyle::Plain => "a string",
            NodeKind::Scalar(s) => match s.value.as_str() {
                "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => "a boolean",
                v if v.parse::<i64>().is_ok() => "an integer",
                v if v.parse::<f64>().is_ok() => "a number",
                _ => "a string",
            },
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }

    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            NodeKind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// Nodes and bytes of scalar text in this tree: what a copy of it costs.
    fn size(&self) -> (usize, usize) {
        match &self.kind {
            NodeKind::Null => (1, 0),
            NodeKind::Scalar(s) => (1, s.value.len()),
            NodeKind::Seq(items) => items.iter().map(Node::size).fold((1, 0), add),
            NodeKind::Map(entries) => entries
                .iter()
                .flat_map(|(k, v)| [k.size(), v.size()])
                .fold((1, 0), add),
        }
    }
}

/// Parses one YAML document. An empty document yields a `Null` node.
pub fn parse(source: &SourceText) -> Result<Node, Box<Diagnostic>> {
    TreeBuilder::new(source).run()
}

enum Frame {
    Seq {
        anchor: usize,
        start: Location,
        items: Vec<Node>,
    },
    Map {
        anchor: usize,
        start: Location,
        entries: Vec<(Node, Node)>,
        /// Index of each scalar key in `entries`, so duplicate checks stay O(1).
        keys: HashMap<String, usize>,
        pending_key: Option<Node>,
    },
}

struct TreeBuilder<'s> {
    source: &'s SourceText,
    parser: Parser<'s, saphyr_parser::StrInput<'s>>,
    stack: Vec<Frame>,
    anchors: Vec<Option<Node>>,
    nodes: usize,
    /// Bytes of scalar text produced so far, aliases included.
    bytes: usize,
    root: Option<Node>,
    documents: usize,
}

impl<'s> TreeBuilder<'s> {
    fn new(source: &'s SourceText) -> Self {
        TreeBuilder {
            source,
            parser: Parser::new_from_str(source.text()),
            stack: Vec::new(),
            anchors: Vec::new(),
            nodes: 0,
            bytes: 0,
            root: None,
            documents: 0,
        }
    }

    fn location(&self, span: &ParserSpan) -> Location {
        let start = self.source.offset_of(span.start.line(), span.start.col());
        let end = self.source.offset_of(span.end.line(), span.end.col());
        self.source.location(start, end.saturating_sub(start))
    }

    fn run(mut self) -> Result<Node, Box<Diagnostic>> {
        while let Some(next) = self.parser.next_event() {
            let (event, span) = next.map_err(|e| self.scan_error(&e))?;
            let location = self.location(&span);
            match event {
                Event::DocumentStart(_) => {
                    self.documents += 1;
                    if self.documents > 1 {
                        return Err(Box::new(
                            Diagnostic::error(
                                "yaml::multiple-documents",
                                "a DAG file holds exactly one YAML document",
                            )
                            .at(location, "a second document starts here")
                            .help("put each DAG in a file of its own"),
                        ));
                    }
                }
                Event::Scalar(value, style, anchor, _tag) => {
                    let style = match style {
                        ParserStyle::Plain => ScalarStyle::Plain,
                        ParserStyle::SingleQuoted | ParserStyle::DoubleQuoted => {
                            ScalarStyle::Quoted
                        }
                        ParserStyle::Literal | ParserStyle::Folded => ScalarStyle::Block,
                    };
                    let kind = if style == ScalarStyle::Plain && is_null(&value) {
                        NodeKind::Null
                    } else {
                        NodeKind::Scalar(Scalar {
                            value: value.into_owned(),
                            style,
                        })
                    };
                    let bytes = match &kind {
                        NodeKind::Scalar(s) => s.value.len(),
                        _ => 0,
                    };
                    self.spend((1, bytes), location)?;
                    self.complete(Node { kind, location }, anchor)?;
                }
                Event::SequenceStart(anchor, _) => {
                    self.open(location)?;
                    self.stack.push(Frame::Seq {
                        anchor,
                        start: location,
                        items: Vec::new(),
                    });
                }
                Event::MappingStart(anchor, _) => {
                    self.open(location)?;
                    self.stack.push(Frame::Map {
                        anchor,
                        start: location,
                        entries: Vec::new(),
                        keys: HashMap::new(),
                        pending_key: None,
                    });
                }
                Event::SequenceEnd | Event::MappingEnd => self.close(location)?,
                Event::Alias(id) => {
                    let Some(Some(target)) = self.anchors.get(id) else {
                        return Err(Box::new(
                            Diagnostic::error(
                                "yaml::unknown-alias",
                                "this alias refers to an anchor that is not defined before it",
                            )
                            .at(location, "unknown alias"),
                        ));
                    };
                    // Counted before it is copied: a refused alias allocates nothing.
                    let size = target.size();
                    self.spend(size, location)?;
                    let Some(Some(target)) = self.anchors.get(id) else {
                        continue;
                    };
                    let mut copy = target.clone();
                    copy.location = location;
                    self.complete(copy, 0)?;
                }
                Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
            }
        }
        Ok(self.root.unwrap_or(Node {
            kind: NodeKind::Null,
            location: self.source.location(0, 0),
        }))
    }

    fn open(&mut self, location: Location) -> Result<(), Box<Diagnostic>> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(Box::new(
                Diagnostic::error(
                    "yaml::too-deep",
                    format!("YAML nested deeper than {MAX_DEPTH} levels"),
                )
                .at(location, "nesting limit reached here")
                .help("a DAG file needs a handful of levels; flatten this structure"),
            ));
        }
        self.spend((1, 0), location)
    }

    /// Counts nodes and bytes against the budgets, aliases included, and refuses past them.
    fn spend(
        &mut self,
        (nodes, bytes): (usize, usize),
        location: Location,
    ) -> Result<(), Box<Diagnostic>> {
        self.nodes = self.nodes.saturating_add(nodes);
        self.bytes = self.bytes.saturating_add(bytes);
        if self.bytes > MAX_EXPANDED_BYTES {
            return Err(Box::new(
                Diagnostic::error(
                    "yaml::too-large",
                    format!(
                        "the document expands to more than {} MiB of text",
                        MAX_EXPANDED_BYTES >> 20
                    ),
                )
                .at(location, "limit passed here")
                .help(
                    "an alias copies its anchor's whole text: reference a large anchor fewer \
                     times, or write the value once",
                ),
            ));
        }
        if self.nodes > MAX_NODES {
            return Err(Box::new(
                Diagnostic::error(
                    "yaml::too-large",
                    format!("the document expands to more than {MAX_NODES} YAML nodes"),
                )
                .at(location, "limit passed here")
                .help(
                    "aliases that repeat other aliases multiply in size (a \"billion laughs\" \
                 bomb); reference anchors directly or write the values out",
                ),
            ));
        }
        Ok(())
    }

    fn close(&mut self, end: Location) -> Result<(), Box<Diagnostic>> {
        let Some(frame) = self.stack.pop() else {
            return Ok(());
        };
        let (kind, anchor, start) = match frame {
            Frame::Seq {
                anchor,
                start,
                items,
            } => (NodeKind::Seq(items), anchor, start),
            Frame::Map {
                anchor,
                start,
                entries,
                ..
            } => (NodeKind::Map(merge_keys(entries)?), anchor, start),
        };
        let len = (end.offset + end.len).saturating_sub(start.offset);
        let location = Location { len, ..start };
        self.complete(Node { kind, location }, anchor)
    }

    /// Attaches a finished node to its parent (or makes it the root) and records its anchor.
    fn complete(&mut self, node: Node, anchor: usize) -> Result<(), Box<Diagnostic>> {
        if anchor > 0 {
            if self.anchors.len() <= anchor {
                self.anchors.resize(anchor + 1, None);
            }
            self.anchors[anchor] = Some(node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                keys,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => {
                    if let Some(text) = key_text(&key) {
                        if let Some(&first) = keys.get(text) {
                            return Err(Box::new(duplicate_key(&key, &entries[first].0)));
                        }
                        keys.insert(text.to_owned(), entries.len());
                    }
                    entries.push((key, node));
                }
            },
        }
        Ok(())
    }

    fn scan_error(&self, error: &ScanError) -> Diagnostic {
        let marker = error.marker();
        let offset = self.source.offset_of(marker.line(), marker.col());
        let location = self.source.location(offset, 0);
        let info = error.info();
        if info.contains("recursion limit") {
            return Diagnostic::error(
                "yaml::too-deep",
                format!("YAML nested deeper than the parser allows ({info})"),
            )
            .at(location, "nesting limit reached here")
            .help("a DAG file needs a handful of levels; flatten this structure");
        }
        let at_tab = self.source.text()[offset..].starts_with('\t')
            || self.source.line_text(location.line).starts_with('\t')
            || info.contains("tab");
        let help = if at_tab {
            "YAML does not allow tabs for indentation; indent with spaces"
        } else if info.contains("anchor") {
            "define an anchor (`&name`) before the alias that uses it (`*name`)"
        } else {
            "check the indentation, closing brackets and quotes, and that every `key: value` \
             pair has a space after the colon"
        };
        Diagnostic::error("yaml::syntax", format!("YAML syntax error: {info}"))
            .at(location, "here")
            .help(help)
    }
}

fn is_null(value: &str) -> bool {
    matches!(value, "" | "~" | "null" | "Null" | "NULL")
}

fn key_text(node: &Node) -> Option<&str> {
    node.as_scalar().map(|s| s.value.as_str())
}

fn duplicate_key(key: &Node, first: &Node) -> Diagnostic {
    let name = key_text(key).unwrap_or_default();
    Diagnostic::error("yaml::duplicate-key", format!("duplicate key `{name}`"))
        .at(key.location, "defined again here")
        .also(first.location, "first defined here")
        .help("each key may appear once in a mapping; rename or remove one of them")
}

/// Applies YAML merge keys (`<<: *base`): explicit keys win over merged ones.
fn merge_keys(entries: Vec<(Node, Node)>) -> Result<Vec<(Node, Node)>, Box<Diagnostic>> {
    let is_merge = |k: &Node| matches!(&k.kind, NodeKind::Scalar(s) if s.style == ScalarStyle::Plain && s.value == "<<");
    if !entries.iter().any(|(k, _)| is_merge(k)) {
        return Ok(entries);
    }
    let mut explicit = Vec::new();
    let mut sources = Vec::new();
    let mut present = HashSet::new();
    for (key, value) in entries {
        if is_merge(&key) {
            match value.kind {
                NodeKind::Map(map) => sources.push(map),
                NodeKind::Seq(items) => {
                    for item in items {
                        match item.kind {
                            NodeKind::Map(map) => sources.push(map),
                            _ => return Err(Box::new(bad_merge(item.location))),
                        }
                    }
                }
                _ => return Err(Box::new(bad_merge(value.location))),
            }
        } else {
            present.extend(key_text(&key).map(str::to_owned));
            explicit.push((key, value));
        }
    }
    for map in sources {
        for (key, value) in map {
            let fresh = key_text(&key).is_none_or(|text| present.insert(text.to_owned()));
            if fresh {
                explicit.push((key, value));
            }
        }
    }
    Ok(explicit)
}

fn bad_merge(location: Location) -> Diagnostic {
    Diagnostic::error(
        "yaml::bad-merge",
        "a merge key `<<` takes a mapping or a list of mappings",
    )
    .at(location, "not a mapping")
}
