//! Reading DAG files and folders: every bad file is reported, every good file still loads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::decode::decode_dag;
use super::diagnostic::{Diagnostic, FileReport, SourceText};
use super::fields::{Decoder, SourceMap};
use super::model::Dag;
use super::validate::Validator;
use super::yaml;

/// Largest DAG file read. A DAG of a hundred tasks is ~30 KiB; this leaves room and keeps
/// a stray multi-megabyte file from slowing every reload.
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// A DAG that passed validation, with where it came from and any warnings.
#[derive(Debug, Clone)]
pub struct LoadedDag {
    pub dag: Dag,
    pub path: PathBuf,
    pub spans: Arc<SourceMap>,
    /// Warnings only; a file with errors does not load.
    pub report: FileReport,
}

/// The result of loading files and folders.
#[derive(Debug, Default)]
pub struct DagSet {
    pub dags: Vec<LoadedDag>,
    /// Files that did not load, with their diagnostics.
    pub failures: Vec<FileReport>,
}

impl DagSet {
    pub fn get(&self, dag_id: &str) -> Option<&LoadedDag> {
        self.dags.iter().find(|d| d.dag.dag == dag_id)
    }

    /// Every report with something to say, failures and warnings, in path order.
    pub fn reports(&self) -> Vec<&FileReport> {
        let mut reports: Vec<&FileReport> = self
            .failures
            .iter()
            .chain(
                self.dags
                    .iter()
                    .map(|d| &d.report)
                    .filter(|r| !r.diagnostics.is_empty()),
            )
            .collect();
        reports.sort_by(|a, b| a.source.path().cmp(b.source.path()));
        reports
    }
}

fn whole_file_problem(path: &Path, text: String, diagnostic: Diagnostic) -> FileReport {
    FileReport {
        source: Arc::new(SourceText::new(path, text)),
        diagnostics: vec![diagnostic],
    }
}

/// Reads and validates one DAG file.
pub fn load_file(path: &Path) -> Result<LoadedDag, FileReport> {
    let bytes = read_bounded(path)?;
    load_bytes(path, bytes)
}

/// A DAG file's bytes, read by [`read_regular_file`]; each refusal as a file problem.
fn read_bounded(path: &Path) -> Result<Vec<u8>, FileReport> {
    read_regular_file(path, MAX_FILE_BYTES).map_err(|e| {
        let (code, help) = match e.kind() {
            std::io::ErrorKind::InvalidInput => (
                "file::not-regular",
                Some("a DAG file is a plain .yaml file; remove this entry from the DAG folder"),
            ),
            std::io::ErrorKind::FileTooLarge => (
                "file::too-large",
                Some("split it, or move data out of the DAG file (into params files or the task's own inputs)"),
            ),
            _ => ("file::unreadable", None),
        };
        let mut diagnostic = Diagnostic::error(code, format!("cannot read the file: {e}"));
        if let Some(help) = help {
            diagnostic = diagnostic.help(help);
        }
        whole_file_problem(path, String::new(), diagnostic)
    })
}

/// The bytes of a regular file (a symlink to one is fine) of at most `max` bytes, opened
/// without blocking and read through a bounded reader: a FIFO, a device or a socket is
/// refused (`InvalidInput`) before it is read, and a file larger than `max`, or growing past
/// it while read, is refused (`FileTooLarge`). DAG files and plugins are read this way.
pub fn read_regular_file(path: &Path, max: usize) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    use std::os::unix::fs::OpenOptionsExt;
    let not_regular = || {
        Error::new(
            ErrorKind::InvalidInput,
            "not a regular file (a FIFO, a device or a socket): it is not read",
        )
    };
    let too_large = |len: u64| {
        Error::new(
            ErrorKind::FileTooLarge,
            format!(
                "the file is {:.1} MiB, over the {:.1} MiB allowed",
                len as f64 / f64::from(1 << 20),
                max as f64 / f64::from(1 << 20)
            ),
        )
    };
    // Checked before opening (opening a FIFO for reading would wait for a writer), and
    // again on the open file, for an entry swapped in between.
    if !std::fs::metadata(path)?.is_file() {
        return Err(not_regular());
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(not_regular());
    }
    if metadata.len() > max as u64 {
        return Err(too_large(metadata.len()));
    }
    let mut bytes = Vec::new();
    file.take(max as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > max {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

fn too_large(path: &Path, len: u64) -> FileReport {
    whole_file_problem(
        path,
        String::new(),
        Diagnostic::error(
            "file::too-large",
            format!(
                "the file is {:.1} MiB; DAG files may be at most {} MiB",
                len as f64 / f64::from(1 << 20),
                MAX_FILE_BYTES >> 20
            ),
        )
        .help("split it, or move data out of the DAG file (into params files or the task's own inputs)"),
    )
}

/// Validates DAG text already in memory; `path` names it in diagnostics.
pub fn load_bytes(path: &Path, bytes: Vec<u8>) -> Result<LoadedDag, FileReport> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(too_large(path, bytes.len() as u64));
    }
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let source = SourceText::new(path, text);
            let location = source.location(valid, 1);
            return Err(FileReport {
                diagnostics: vec![
                    Diagnostic::error("file::not-utf8", "the file is not valid UTF-8")
                        .at(location, "invalid byte here")
                        .help("save the file as UTF-8"),
                ],
                source: Arc::new(source),
            });
        }
    };
    let source = Arc::new(SourceText::new(path, text));
    let mut decoder = Decoder::new();
    let dag = match yaml::parse(&source) {
        Ok(root) => decode_dag(&mut decoder, &root),
        Err(diagnostic) => {
            decoder.report(*diagnostic);
            None
        }
    };
    let Decoder {
        mut diagnostics,
        spans,
    } = decoder;
    if let Some(dag) = &dag {
        Validator {
            dag,
            spans: &spans,
            source: &source,
            diagnostics: &mut diagnostics,
        }
        .run();
    }
    diagnostics.sort_by_key(|d| {
        d.primary
            .as_ref()
            .map(|l| (l.location.line, l.location.column))
    });
    let report = FileReport {
        source,
        diagnostics,
    };
    match dag {
        Some(dag) if !report.has_errors() => Ok(LoadedDag {
            dag,
            path: path.to_owned(),
            spans: Arc::new(spans),
            report,
        }),
        _ => Err(report),
    }
}

/// Whether a path names a DAG file.
pub fn is_dag_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// DAG files under `paths` (files as given, folders searched recursively), sorted.
pub fn dag_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, (PathBuf, std::io::Error)> {
    let mut files = Vec::new();
    for path in paths {
        let metadata = std::fs::metadata(path).map_err(|e| (path.clone(), e))?;
        if metadata.is_dir() {
            collect(path, &mut files).map_err(|e| (path.clone(), e))?;
        } else {
            files.push(path.clone());
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        // Hidden files and folders (editor swap files, .git) are not DAGs.
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect(&path, files)?;
        } else if is_dag_file(&path) {
            files.push(path);
        }
    }
    Ok(())
}

/// Loads files and folders on all cores. A DAG id defined by two files is an error in the
/// later one (by path order); the first keeps loading. Assets are checked across them all
/// ([`super::assets::check_catalog`]).
pub fn load_paths(paths: &[PathBuf]) -> Result<DagSet, (PathBuf, std::io::Error)> {
    load_paths_in(paths, &[])
}

/// [`load_paths`], with the assets the DAGs read resolved against `context` too (the DAG
/// folder a lone file belongs to): its DAGs produce, nothing of it is reported. A DAG of
/// `paths` replaces the context's DAG of the same id.
pub fn load_paths_in(
    paths: &[PathBuf],
    context: &[PathBuf],
) -> Result<DagSet, (PathBuf, std::io::Error)> {
    let mut set = load_each(paths)?;
    let context = if context.is_empty() {
        Vec::new()
    } else {
        load_each(context)?.dags
    };
    super::assets::check_catalog(&mut set, &context);
    Ok(set)
}

/// Each file on its own, and the duplicate-id rule.
fn load_each(paths: &[PathBuf]) -> Result<DagSet, (PathBuf, std::io::Error)> {
    let files = dag_files(paths)?;
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len().max(1));
    let chunk = files.len().div_ceil(workers).max(1);
    let results: Vec<Result<LoadedDag, FileReport>> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(|p| load_file(p)).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(results) => results,
                // A panic in one worker is a bug; surface it instead of losing files silently.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    let mut set = DagSet::default();
    let mut first_file: HashMap<String, PathBuf> = HashMap::new();
    for result in results {
        match result {
            Ok(loaded) => match first_file.get(&loaded.dag.dag) {
                Some(first) => {
                    let location = loaded.spans.value("dag");
                    let mut diagnostic = Diagnostic::error(
                        "spec::duplicate-dag",
                        format!(
                            "DAG id `{}` is already defined in {}",
                            loaded.dag.dag,
                            first.display()
                        ),
                    )
                    .help("DAG ids are unique across the DAG folder; rename one");
                    if let Some(location) = location {
                        diagnostic = diagnostic.at(location, "defined again here");
                    }
                    set.failures.push(FileReport {
                        source: loaded.report.source.clone(),
                        diagnostics: vec![diagnostic],
                    });
                }
                None => {
                    first_file.insert(loaded.dag.dag.clone(), loaded.path.clone());
                    set.dags.push(loaded);
                }
            },
            Err(report) => set.failures.push(report),
        }
    }
    Ok(set)
}
