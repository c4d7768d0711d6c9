//! Where the state is shipped: a directory (a mounted volume, or a test) or an S3 bucket.
//! Both hold the same layout of objects (see `ship.rs`); keys use `/` between parts.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A shipping target as configured (`ha.ship_to`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShipTarget {
    Dir(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl ShipTarget {
    /// `s3://bucket/prefix` or a folder (relative to `base`).
    pub fn parse(text: &str, base: &Path) -> Result<ShipTarget, String> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid_bucket = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                });
            if !valid_bucket {
                return Err(format!(
                    "`{bucket}` is not an S3 bucket name (3 to 63 lowercase letters, digits, `-`, `.`)"
                ));
            }
            return Ok(ShipTarget::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            });
        }
        if text.contains("://") {
            return Err(format!(
                "`{text}`: only s3:// URLs and folders can be shipped to"
            ));
        }
        if text.trim().is_empty() {
            return Err("an empty path".into());
        }
        Ok(ShipTarget::Dir(base.join(text)))
    }
}

impl std::fmt::Display for ShipTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShipTarget::Dir(path) => write!(f, "{}", path.display()),
            ShipTarget::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{key}: {source}")]
    Io { key: String, source: std::io::Error },
    #[error("{key}: {reason}")]
    Remote { key: String, reason: String },
}

/// The object operations shipping and restoring need.
pub trait Objects: Send + Sync {
    /// Writes `body` at `key` atomically: a reader sees all of it or nothing.
    fn put(&self, key: &str, body: &[u8]) -> Result<(), TargetError>;
    /// Uploads a local file (a snapshot: possibly large) to `key`, atomically.
    fn put_file(&self, key: &str, file: &Path) -> Result<(), TargetError>;
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, TargetError>;
    /// The names directly under `folder` (files and sub-folders alike), sorted.
    fn list(&self, folder: &str) -> Result<Vec<String>, TargetError>;
    fn delete(&self, key: &str) -> Result<(), TargetError>;
}

/// A directory target: each object a file, written to a temporary name, synced, renamed.
#[derive(Debug, Clone)]
pub struct DirObjects {
    root: PathBuf,
}

impl DirObjects {
    pub fn new(root: PathBuf) -> DirObjects {
        DirObjects { root }
    }

    fn path(&self, key: &str) -> PathBuf {
        key.split('/')
            .filter(|part| !part.is_empty() && *part != "." && *part != "..")
            .fold(self.root.clone(), |path, part| path.join(part))
    }

    fn write_atomically(
        &self,
        key: &str,
        fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
    ) -> Result<(), TargetError> {
        let io = |source| TargetError::Io {
            key: key.to_owned(),
            source,
        };
        let path = self.path(key);
        let folder = path.parent().unwrap_or(&self.root).to_path_buf();
        private_dirs(&folder, &self.root).map_err(io)?;
        let temporary = folder.join(format!(
            ".{}.partial-{}",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            std::process::id()
        ));
        let mut file = private_file(&temporary).map_err(io)?;
        fill(&mut file).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&temporary, &path).map_err(io)?;
        std::fs::File::open(&folder)
            .and_then(|f| f.sync_all())
            .map_err(io)
    }
}

/// Creates `folder` and makes it and its parents up to `root` private (0700): the shipped
/// state holds run conf and rendered SQL, like the state folder.
fn private_dirs(folder: &Path, root: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(folder)?;
    for dir in folder.ancestors().take_while(|d| d.starts_with(root)) {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

impl Objects for DirObjects {
    fn put(&self, key: &str, body: &[u8]) -> Result<(), TargetError> {
        self.write_atomically(key, |file| file.write_all(body))
    }

    fn put_file(&self, key: &str, source: &Path) -> Result<(), TargetError> {
        self.write_atomically(key, |file| {
            let mut input = std::fs::File::open(source)?;
            std::io::copy(&mut input, file).map(|_| ())
        })
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, TargetError> {
        match std::fs::read(self.path(key)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(TargetError::Io {
                key: key.to_owned(),
                source,
            }),
        }
    }

    fn list(&self, folder: &str) -> Result<Vec<String>, TargetError> {
        let entries = match std::fs::read_dir(self.path(folder)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(TargetError::Io {
                    key: folder.to_owned(),
                    source,
                });
            }
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            // A temporary file is not an object yet.
            .filter(|name| !name.starts_with('.'))
            .collect();
        names.sort();
        Ok(names)
    }

    fn delete(&self, key: &str) -> Result<(), TargetError> {
        let path = self.path(key);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                // Folders left empty go too (as in a bucket, where folders are only prefixes).
                let mut folder = path.parent();
                while let Some(dir) = folder.filter(|d| *d != self.root) {
                    if std::fs::remove_dir(dir).is_err() {
                        break;
                    }
                    folder = dir.parent();
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(TargetError::Io {
                key: key.to_owned(),
                source,
            }),
        }
    }
}

/// The objects of a configured target.
pub fn open(
    target: &ShipTarget,
    location: &super::s3::S3Location,
) -> Result<Box<dyn Objects>, TargetError> {
    match target {
        ShipTarget::Dir(path) => {
            private_dirs(path, path).map_err(|source| TargetError::Io {
                key: path.display().to_string(),
                source,
            })?;
            Ok(Box::new(DirObjects::new(path.clone())))
        }
        ShipTarget::S3 { bucket, prefix } => Ok(Box::new(super::s3::S3Objects::new(
            bucket.clone(),
            prefix.clone(),
            location,
        )?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_folder_target_is_private_and_lists_only_whole_objects() {
        let root = std::env::temp_dir().join(format!("sluice-target-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let objects = open(&ShipTarget::Dir(root.clone()), &Default::default()).unwrap();
        objects.put("gen/0001/log/a.seg", b"bytes").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("gen/0001/log")), 0o700);
        assert_eq!(mode(&root.join("gen/0001/log/a.seg")), 0o600);
        // A file being written (a temporary name) is not an object yet.
        std::fs::write(root.join("gen/0001/log/.b.seg.partial-1"), b"half").unwrap();
        assert_eq!(
            objects.list("gen/0001/log").unwrap(),
            vec!["a.seg".to_owned()]
        );
        // Keys cannot climb out of the target.
        objects.put("../../escape", b"x").unwrap();
        assert!(root.join("escape").exists());
        assert_eq!(
            objects.get("gen/0001/log/a.seg").unwrap().as_deref(),
            Some(&b"bytes"[..])
        );
        std::fs::remove_file(root.join("gen/0001/log/.b.seg.partial-1")).unwrap();
        objects.delete("gen/0001/log/a.seg").unwrap();
        assert!(!root.join("gen").exists(), "emptied folders go too");
        let _ = std::fs::remove_dir_all(&root);
    }
}
