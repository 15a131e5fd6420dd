//! Manifest files: which files a path stands for, reading them with a size bound, and
//! splitting a YAML stream into documents with the line each starts at.

use std::{
    collections::HashSet,
    io::Read,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use observer_wire::regular_file::{FileKind, OpenError, open_regular};

/// Directory entries read as manifests.
const MANIFEST_EXTENSIONS: [&str; 2] = ["yaml", "yml"];
/// Bound on a manifest file: policy files are small; this stops a wrong path (a disk image)
/// from being read into memory.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The YAML files a path stands for: itself, or the manifests under a directory, sorted.
///
/// Symbolic links are followed, to files and to directories (a ConfigMap mount is made of
/// them), each directory read once however many links lead to it, so a link loop ends. A link
/// that leads nowhere is an error, never a silent skip: a policy left unread is a policy not
/// applied. A `*.yaml` entry that is not a regular file (a link to a device) is listed and
/// refused by [`read_bounded`], with what it is.
pub fn manifest_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    let mut dirs = vec![path.to_owned()];
    while let Some(dir) = dirs.pop() {
        let meta = std::fs::metadata(&dir)?;
        if !seen.insert((meta.dev(), meta.ino())) {
            continue; // reached again through a link
        }
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if hidden {
                continue; // ConfigMap mounts keep old versions in ..data dirs
            }
            let mut is_dir = entry.file_type()?.is_dir();
            if entry.file_type()?.is_symlink() {
                is_dir = std::fs::metadata(&path)
                    .map_err(|e| std::io::Error::new(e.kind(), format!("{}: broken link: {e}", path.display())))?
                    .is_dir();
            }
            if is_dir {
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
    /// The path could not be opened or read.
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    /// A device, FIFO, socket or directory where a manifest file was expected.
    #[error("{0}, not a manifest file")]
    NotRegular(FileKind),
    /// A file larger than [`MAX_FILE_BYTES`] (or one that grew past it while read).
    #[error("file larger than {MAX_FILE_BYTES} bytes")]
    TooLarge,
    /// The bytes are not UTF-8 (YAML is text).
    #[error("file is not UTF-8")]
    NotUtf8,
}

/// A manifest file's text: regular files only, opened without blocking, and never more than
/// [`MAX_FILE_BYTES`] read, whatever size the file claims (a `/proc` file says 0) or reaches
/// while it is read.
pub fn read_bounded(file: &Path) -> Result<String, FileError> {
    let handle = open_regular(file).map_err(|e| match e {
        OpenError::NotRegular(kind) => FileError::NotRegular(kind),
        OpenError::Io(e) => FileError::Io(e),
        other => FileError::Io(std::io::Error::other(other)),
    })?;
    let mut bytes = Vec::new();
    handle.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(FileError::TooLarge);
    }
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
