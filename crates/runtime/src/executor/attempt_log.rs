//! An attempt's log file, written line by line with a timestamp, by executors that run
//! their work in this process's async runtime (ClickHouse statements, sensor pokes).

use std::io::Write;

/// The attempt's log file; writing to it never fails the attempt.
pub struct AttemptLog(Option<std::fs::File>);

impl AttemptLog {
    pub fn open(path: &std::path::Path) -> Self {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        AttemptLog(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok(),
        )
    }

    pub fn line(&mut self, text: &str) {
        if let Some(file) = &mut self.0 {
            let _ = writeln!(
                file,
                "[sluice {}] {}",
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                crate::masking::mask(text)
            );
        }
    }
}
