//! Where commands write, and the small helpers they share for tables and JSON.

use std::io::Write;

use super::CliError;

/// A time in a table cell: UTC to the second (JSON output keeps the full precision).
pub fn table_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The streams a command writes to; `color` enables ANSI colors in diagnostics.
pub struct Streams<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    pub color: bool,
    /// Set when the command runs inside a scheduler for another process.
    pub remote: Option<super::remote::Remote>,
}

impl Streams<'_> {
    pub fn print(&mut self, text: &str) -> Result<i32, CliError> {
        self.out.write_all(text.as_bytes())?;
        Ok(0)
    }

    /// A change's outcome: its message, or `{"ok": true, "message": …}`.
    pub fn done(&mut self, format: super::OutputFormat, message: &str) -> Result<i32, CliError> {
        match format {
            super::OutputFormat::Json => {
                self.json(&serde_json::json!({ "ok": true, "message": message }))?
            }
            super::OutputFormat::Table => writeln!(self.out, "{message}")?,
        }
        Ok(0)
    }

    pub fn json(&mut self, value: &impl serde::Serialize) -> Result<(), CliError> {
        serde_json::to_writer_pretty(&mut *self.out, value)
            .map_err(|e| CliError::Output(e.into()))?;
        writeln!(self.out)?;
        Ok(())
    }

    /// Left-aligned columns, two spaces apart.
    pub fn table(&mut self, header: &[&str], rows: &[Vec<String>]) -> Result<(), CliError> {
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let mut text = String::new();
            for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
                if i + 1 == cells.len() {
                    text.push_str(cell);
                } else {
                    text.push_str(&format!("{cell:<width$}  "));
                }
            }
            text.trim_end().to_owned()
        };
        writeln!(self.out, "{}", line(header.to_vec()))?;
        for row in rows {
            writeln!(
                self.out,
                "{}",
                line(row.iter().map(String::as_str).collect())
            )?;
        }
        Ok(())
    }
}
