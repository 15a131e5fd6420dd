//! Manifest files: which files a path stands for, reading them with a size bound, and
//! splitting a YAML stream into documents with the line each starts at.

use std::path::{Path, PathBuf};

/// Directory entries read as manifests.
const MANIFEST_EXTENSIONS: [&str; 2] = ["yaml", "yml"];
/// Bound on a manifest file: policy files are small; this stops a wrong path (a disk image)
/// from being read into memory.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The YAML files a path stands for: itself, or the manifests under a directory, sorted.
pub fn manifest_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    let mut dirs = vec![path.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if hidden {
                continue; // ConfigMap mounts keep old versions in ..data dirs
            } else if entry.file_type()?.is_dir() {
                dirs.push(path);
            } else if path.extension().and_then(|e| e.to_str()).is_some_and(|e| MANIFEST_EXTENSIONS.contains(&e)) {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Why a manifest file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The path could not be read.
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    /// A file larger than [`MAX_FILE_BYTES`].
    #[error("file larger than {MAX_FILE_BYTES} bytes")]
    TooLarge,
    /// The bytes are not UTF-8 (YAML is text).
    #[error("file is not UTF-8")]
    NotUtf8,
}

/// A manifest file's text, refusing files larger than [`MAX_FILE_BYTES`].
pub fn read_bounded(file: &Path) -> Result<String, FileError> {
    if std::fs::metadata(file)?.len() > MAX_FILE_BYTES {
        return Err(FileError::TooLarge);
    }
    let bytes = std::fs::read(file)?;
    String::from_utf8(bytes).map_err(|_| FileError::NotUtf8)
}

/// Splits a YAML stream into documents: (text, lines before it).
pub fn documents(text: &str) -> Vec<(String, u32)> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 0u32;
    for (i, line) in text.lines().enumerate() {
        let n = u32::try_from(i).unwrap_or(u32::MAX);
        let marker =
            |m: &str| line.strip_prefix(m).is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']));
        if marker("---") || marker("...") {
            docs.push((std::mem::take(&mut current), start));
            start = n.saturating_add(1);
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs.push((current, start));
    docs
}
