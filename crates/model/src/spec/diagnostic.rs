//! Located problems in DAG files: what went wrong, where (file:line:col), and what to do.
//!
//! Diagnostics are plain data so that the CLI can print them as miette reports (a snippet
//! with a caret) or as JSON, and tests can assert on line and message.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

/// The text of one file plus a line index, for turning offsets into line:col.
#[derive(Debug)]
pub struct SourceText {
    path: PathBuf,
    text: String,
    line_starts: Vec<usize>,
}

impl SourceText {
    pub fn new(path: impl Into<PathBuf>, text: String) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceText {
            path: path.into(),
            text,
            line_starts,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Byte offset of a 1-based line and a 0-based column counted in characters.
    pub fn offset_of(&self, line: usize, col_chars: usize) -> usize {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.text.len();
        };
        let rest = &self.text[start..];
        rest.char_indices()
            .nth(col_chars)
            .map_or(self.text.len(), |(i, _)| start + i)
    }

    /// The location of `len` bytes at a byte offset, with its 1-based line and column.
    pub fn location(&self, offset: usize, len: usize) -> Location {
        let offset = offset.min(self.text.len());
        let line_index = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let line_start = self.line_starts[line_index];
        let column = self.text[line_start..offset].chars().count() + 1;
        Location {
            offset,
            len: len.min(self.text.len() - offset),
            line: line_index + 1,
            column,
        }
    }

    /// The text of a 1-based line, without its line break.
    pub fn line_text(&self, line: usize) -> &str {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return "";
        };
        let end = self
            .line_starts
            .get(line)
            .map_or(self.text.len(), |&e| e - 1);
        self.text[start..end.max(start)].trim_end_matches('\r')
    }
}

/// A span of a file: byte offset and length, and the 1-based line and column where it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Location {
    pub offset: usize,
    pub len: usize,
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Label {
    pub location: Location,
    pub text: String,
}

/// One problem found in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable identifier of the kind of problem, e.g. `spec::unknown-field`.
    pub code: &'static str,
    pub message: String,
    /// Where it is; `None` for problems of the whole file (unreadable, too large).
    pub primary: Option<Label>,
    /// Other places that explain it (the first definition of a duplicate, a cycle's edges).
    pub related: Vec<Label>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            primary: None,
            related: Vec::new(),
            help: None,
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    pub fn at(mut self, location: Location, label: impl Into<String>) -> Self {
        self.primary = Some(Label {
            location,
            text: label.into(),
        });
        self
    }

    pub fn also(mut self, location: Location, label: impl Into<String>) -> Self {
        self.related.push(Label {
            location,
            text: label.into(),
        });
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn help_opt(self, help: Option<String>) -> Self {
        match help {
            Some(h) => self.help(h),
            None => self,
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    pub fn line(&self) -> Option<usize> {
        self.primary.as_ref().map(|l| l.location.line)
    }
}

/// All diagnostics of one file, with its text for rendering snippets.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub source: Arc<SourceText>,
    pub diagnostics: Vec<Diagnostic>,
}

impl FileReport {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// Renders every diagnostic as a miette report: message, `file:line:col` snippet with a
    /// caret under the problem, and the hint.
    pub fn render(&self, color: bool) -> String {
        let theme = if color {
            miette::GraphicalTheme::unicode()
        } else {
            miette::GraphicalTheme::unicode_nocolor()
        };
        let handler = miette::GraphicalReportHandler::new_themed(theme)
            .with_context_lines(1)
            .with_width(100);
        let mut out = String::new();
        for diagnostic in &self.diagnostics {
            let report = Rendered {
                source: &self.source,
                diagnostic,
            };
            if handler.render_report(&mut out, &report).is_err() {
                out.push_str(&self.plain_line(diagnostic));
            }
            out.push('\n');
        }
        out
    }

    /// `file:line:col: severity[code]: message` — one grep-able line per diagnostic.
    pub fn plain_line(&self, diagnostic: &Diagnostic) -> String {
        let severity = match diagnostic.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let place = match &diagnostic.primary {
            Some(label) => format!(
                "{}:{}:{}",
                self.source.path().display(),
                label.location.line,
                label.location.column
            ),
            None => self.source.path().display().to_string(),
        };
        format!(
            "{place}: {severity}[{}]: {}",
            diagnostic.code, diagnostic.message
        )
    }

    pub fn to_json(&self) -> Vec<serde_json::Value> {
        self.diagnostics
            .iter()
            .map(|d| {
                let location = d.primary.as_ref().map(|l| l.location);
                serde_json::json!({
                    "file": self.source.path().display().to_string(),
                    "line": location.map(|l| l.line),
                    "column": location.map(|l| l.column),
                    "severity": d.severity,
                    "code": d.code,
                    "message": d.message,
                    "label": d.primary.as_ref().map(|l| l.text.clone()),
                    "help": d.help,
                    "related": d.related,
                })
            })
            .collect()
    }
}

struct Rendered<'a> {
    source: &'a SourceText,
    diagnostic: &'a Diagnostic,
}

impl fmt::Debug for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.diagnostic, f)
    }
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.diagnostic.primary {
            Some(label) => write!(
                f,
                "{}:{}:{}: {}",
                self.source.path().display(),
                label.location.line,
                label.location.column,
                self.diagnostic.message
            ),
            None => write!(
                f,
                "{}: {}",
                self.source.path().display(),
                self.diagnostic.message
            ),
        }
    }
}

impl std::error::Error for Rendered<'_> {}

impl miette::Diagnostic for Rendered<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diagnostic.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diagnostic
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.diagnostic
            .primary
            .as_ref()
            .map(|_| self as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let primary = self.diagnostic.primary.as_ref()?;
        let to_span = |label: &Label, primary: bool| {
            let span = miette::SourceSpan::new(label.location.offset.into(), label.location.len);
            if primary {
                miette::LabeledSpan::new_primary_with_span(Some(label.text.clone()), span)
            } else {
                miette::LabeledSpan::new_with_span(Some(label.text.clone()), span)
            }
        };
        let labels = std::iter::once(to_span(primary, true)).chain(
            self.diagnostic
                .related
                .iter()
                .map(move |l| to_span(l, false)),
        );
        Some(Box::new(labels))
    }
}

impl miette::SourceCode for Rendered<'_> {
    fn read_span<'b>(
        &'b self,
        span: &miette::SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'b> + 'b>, miette::MietteError> {
        let contents =
            self.source
                .text()
                .read_span(span, context_lines_before, context_lines_after)?;
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.source.path().display().to_string(),
            contents.data(),
            *contents.span(),
            contents.line(),
            contents.column(),
            contents.line_count(),
        )))
    }
}
