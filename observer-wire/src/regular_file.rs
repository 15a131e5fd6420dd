//! Opening a file a user named (a capture, a manifest) without trusting what the name stands
//! for: only regular files are read. Devices (`/dev/zero`), `/proc` files (their reported size is
//! 0), FIFOs and sockets are refused with what they are, and opening never blocks: a FIFO with
//! no writer would otherwise hang `observer check`, `replay` and a policy reload forever.

use std::{
    fs::{File, FileType, OpenOptions},
    io,
    os::unix::fs::{FileTypeExt, OpenOptionsExt},
    path::Path,
};

/// Why a file was not opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The operating system refused (missing, permissions, ...).
    #[error("cannot open: {0}")]
    Io(#[from] io::Error),
    /// The path names something other than a regular file.
    #[error("{0}, not a regular file")]
    NotRegular(FileKind),
}

/// What a path that is not a regular file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileKind {
    #[error("a directory")]
    Directory,
    #[error("a FIFO")]
    Fifo,
    #[error("a character device")]
    CharDevice,
    #[error("a block device")]
    BlockDevice,
    #[error("a socket")]
    Socket,
    /// Anything else the file system may hold.
    #[error("a special file")]
    Other,
}

impl FileKind {
    fn of(file_type: FileType) -> Option<Self> {
        Some(if file_type.is_file() {
            return None;
        } else if file_type.is_dir() {
            Self::Directory
        } else if file_type.is_fifo() {
            Self::Fifo
        } else if file_type.is_char_device() {
            Self::CharDevice
        } else if file_type.is_block_device() {
            Self::BlockDevice
        } else if file_type.is_socket() {
            Self::Socket
        } else {
            Self::Other
        })
    }
}

/// Opens `path` for reading if it is a regular file (following symbolic links). The type is
/// checked on the opened descriptor, so a name swapped after a check cannot slip through;
/// `O_NONBLOCK` keeps the open itself from waiting for a FIFO's writer.
pub fn open_regular(path: &Path) -> Result<File, OpenError> {
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path)?;
    match FileKind::of(file.metadata()?.file_type()) {
        None => Ok(file),
        Some(kind) => Err(OpenError::NotRegular(kind)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_directories_and_fifos_are_refused_without_blocking() {
        let kind = |path: &Path| match open_regular(path) {
            Err(OpenError::NotRegular(kind)) => Some(kind),
            Ok(_) => None,
            Err(e) => panic!("{}: {e}", path.display()),
        };
        assert_eq!(kind(Path::new("/dev/zero")), Some(FileKind::CharDevice));
        assert_eq!(kind(Path::new("/proc/self/status")), None, "a /proc file is regular; its read is capped");
        let dir = std::env::temp_dir().join(format!("observer-regular-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        assert_eq!(kind(&dir), Some(FileKind::Directory));
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
        assert!(made.success(), "mkfifo");
        // No writer: a blocking open would never return, so the open runs on a thread with a deadline.
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || tx.send(kind(&path)));
        let answer = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("opening a FIFO does not block");
        assert_eq!(answer, Some(FileKind::Fifo));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
