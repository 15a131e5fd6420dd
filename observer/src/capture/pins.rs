//! The pin directory of `observer run --pin DIR` and `observer unpin DIR`.
//!
//! A pinned map or link outlives the process that made it: the kernel keeps the maps (ring
//! buffer included) and keeps the programs attached through their links until the files in
//! DIR are removed. A daemon killed and started again therefore has no blind window: while it
//! is down the programs keep writing into the pinned ring, and the next start drains it.
//!
//! DIR holds only the observer's files: one per map (named as the map, `EVENTS`) and one per
//! link (`link_<program>`). Anything else in it is foreign and makes both commands refuse, so
//! pointing `--pin` at a directory of other software never removes or reuses its objects.
//! While a daemon runs it holds an exclusive `flock` on DIR: a second daemon on the same
//! pins, or an `unpin` under a running daemon, is refused instead of sharing the ring.

pub mod bpf;

use std::{
    fs::File,
    os::fd::{AsFd as _, AsRawFd as _, OwnedFd},
    path::{Path, PathBuf},
};

use aya::programs::links::{FdLink, LinkError};
use observer_common::names;

use self::bpf::{MapLayout, Object};

/// Where `--pin` and `unpin` pin when given no directory.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/observer";
/// The maps that are pinned: every map userspace or the programs keep state in.
pub const PINNED_MAPS: [&str; 6] =
    [names::EVENTS, names::CONNS, names::OWNERS, names::LISTENERS, names::PEERS, names::DROPS];
/// The programs whose links are pinned, as `link_<program>`.
pub const LINKED_PROGRAMS: [&str; 6] =
    [names::SOCK_CREATE, names::POST_BIND4, names::POST_BIND6, names::SOCK_OPS, names::SKB_EGRESS, names::SKB_INGRESS];
const LINK_PREFIX: &str = "link_";
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
const BPF_MAP_TYPE_RINGBUF: u32 = 27;

/// Why a pin directory cannot be used or cleaned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    /// The directory (or, when it does not exist yet, its nearest existing parent) is not on bpffs.
    #[error(
        "{path} is not on a BPF filesystem (bpffs); mounting one is the deployment's job: `mount -t bpf bpf /sys/fs/bpf` on the host, or a hostPath volume of the host's /sys/fs/bpf in a pod"
    )]
    NotBpffs { path: PathBuf },
    /// A file-system operation on the pin directory failed.
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    /// The directory holds something that is not one of the observer's pins.
    #[error(
        "{dir} holds files that are not the observer's: {files}; nothing was touched: choose another --pin directory, or remove them yourself"
    )]
    Foreign { dir: PathBuf, files: String },
    /// A pinned map has another layout than this build's programs expect.
    #[error(
        "pinned map {path} has another layout ({pinned}) than this build's ({built}): it was pinned by an incompatible observer build; run `observer unpin {dir}` and start again (connections opened in between are not seen)",
        dir = path.parent().unwrap_or(path).display()
    )]
    Layout { path: PathBuf, pinned: MapLayout, built: String },
    /// Another running observer holds the directory's lock.
    #[error("{dir} is in use by another running observer: stop it first, or use another --pin directory")]
    InUse { dir: PathBuf },
    /// The embedded eBPF object could not be read for its map definitions.
    #[error("cannot read the map definitions of the embedded eBPF object: {0}")]
    Object(#[from] aya_obj::ParseError),
    /// The kernel attached a program without a bpf_link, which cannot be pinned.
    #[error(
        "cannot pin the link of {program}: {source}; pinning needs cgroup bpf_links (Linux 5.7 or later): run without --pin"
    )]
    NotPinnable { program: &'static str, source: LinkError },
    /// A pinned link is attached at another cgroup than the one this run attaches at.
    #[error(
        "the pinned link {path} is attached at cgroup id {pinned}, not at {cgroup} (id {wanted}): run `observer unpin {dir}` first, or pass the --cgroup of the run that pinned it",
        dir = path.parent().unwrap_or(path).display(), cgroup = cgroup.display()
    )]
    OtherCgroup { path: PathBuf, pinned: u64, cgroup: PathBuf, wanted: u64 },
    /// Pinning a link failed.
    #[error("cannot pin the link of {program} at {path}: {source}")]
    PinLink { program: &'static str, path: PathBuf, source: aya::pin::PinError },
}

/// A pin directory on bpffs, locked for this process while it lives.
#[derive(Debug)]
pub struct PinDir {
    path: PathBuf,
    /// Holds the `flock`; closing it releases the lock.
    _lock: File,
    contents: Contents,
}

/// The observer's pins found in a directory.
#[derive(Debug, Default)]
struct Contents {
    maps: Vec<(&'static str, MapLayout)>,
    links: Vec<&'static str>,
}

impl PinDir {
    /// Opens DIR for `observer run --pin`, creating it if needed: it must be on bpffs, hold only
    /// the observer's pins, and not be in use by another observer.
    pub fn prepare(path: &Path) -> Result<Self, PinError> {
        if !path.exists() {
            let parent = path.ancestors().skip(1).find(|p| p.exists()).unwrap_or(Path::new("/"));
            if !is_bpffs(parent) {
                return Err(PinError::NotBpffs { path: path.to_path_buf() });
            }
            std::fs::create_dir_all(path).map_err(|source| PinError::Io {
                action: "create",
                path: path.to_path_buf(),
                source,
            })?;
        }
        let (lock, contents) = open_locked(path)?;
        Ok(Self { path: path.to_path_buf(), _lock: lock, contents })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the map `name` is pinned.
    pub fn map_path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// How many maps were already pinned (reused rather than created).
    pub fn reused_maps(&self) -> usize {
        self.contents.maps.len()
    }

    /// Fails unless every map already pinned has the layout this build's `object` defines: the
    /// programs are replaced on restart, the maps and their contents are kept.
    pub fn check_layouts(&self, object: &[u8]) -> Result<(), PinError> {
        if self.contents.maps.is_empty() {
            return Ok(());
        }
        let parsed = aya_obj::Object::parse(object)?;
        for (name, pinned) in &self.contents.maps {
            let path = self.map_path(name);
            let Some(def) = parsed.maps.get(*name) else {
                return Err(PinError::Layout { path, pinned: *pinned, built: "no such map".to_owned() });
            };
            let built = MapLayout {
                map_type: def.map_type(),
                key_size: def.key_size(),
                value_size: def.value_size(),
                max_entries: def.max_entries(),
            };
            // A ring buffer has no key or value, and its records are read by their own length:
            // one of another size (an earlier build's: 16 MiB before 8) is reused as it is, so
            // that the upgrade keeps what it holds; its new size takes effect after an unpin.
            let same = if built.map_type == BPF_MAP_TYPE_RINGBUF {
                pinned.map_type == built.map_type
            } else {
                *pinned == built
            };
            if !same {
                return Err(PinError::Layout { path, pinned: *pinned, built: built.to_string() });
            }
        }
        Ok(())
    }

    /// The pinned link of `program`, when a run before this one pinned it. It must be attached
    /// at `cgroup`: swapping the program of a link elsewhere would observe the wrong cgroup.
    pub fn open_link(&self, program: &'static str, cgroup: &Path) -> Result<Option<OwnedFd>, PinError> {
        use std::os::unix::fs::MetadataExt as _;
        if !self.contents.links.contains(&program) {
            return Ok(None);
        }
        let path = self.link_path(program);
        let link = bpf::obj_get(&path).map_err(|source| PinError::Io {
            action: "open the pinned link",
            path: path.clone(),
            source,
        })?;
        // A cgroup v2 directory's inode number is its cgroup id.
        let wanted = std::fs::metadata(cgroup)
            .map_err(|source| PinError::Io { action: "stat", path: cgroup.to_path_buf(), source })?
            .ino();
        match bpf::describe(link.as_fd()) {
            Object::Link { cgroup_id: Some(pinned), .. } if pinned != wanted => {
                Err(PinError::OtherCgroup { path, pinned, cgroup: cgroup.to_path_buf(), wanted })
            }
            _ => Ok(Some(link)),
        }
    }

    /// Pins a link made by this run, so that it outlives the process.
    pub fn pin_link(&self, program: &'static str, link: Result<FdLink, LinkError>) -> Result<(), PinError> {
        let link = link.map_err(|source| PinError::NotPinnable { program, source })?;
        let path = self.link_path(program);
        // The file descriptor closes with the returned handle; the pin keeps the link.
        link.pin(&path).map(drop).map_err(|source| PinError::PinLink { program, path, source })
    }

    fn link_path(&self, program: &str) -> PathBuf {
        self.path.join(format!("{LINK_PREFIX}{program}"))
    }
}

/// What `observer unpin` removed.
#[derive(Debug, Default)]
pub struct Unpinned {
    pub links: Vec<PathBuf>,
    pub maps: Vec<PathBuf>,
    /// Whether DIR itself was removed (it is kept when it is a mount point).
    pub dir_removed: bool,
}

/// Removes the observer's pins from DIR (links first, so the programs detach before their maps
/// go), then DIR itself. `Ok(None)` when there is no DIR. Refuses, touching nothing, if DIR holds
/// anything that is not the observer's or a running observer uses it.
pub fn unpin(path: &Path) -> Result<Option<Unpinned>, PinError> {
    if !path.exists() {
        return Ok(None);
    }
    let (lock, contents) = open_locked(path)?;
    let mut removed = Unpinned::default();
    let remove = |file: PathBuf| {
        std::fs::remove_file(&file).map(|()| file.clone()).map_err(|source| PinError::Io {
            action: "remove",
            path: file,
            source,
        })
    };
    for program in &contents.links {
        removed.links.push(remove(path.join(format!("{LINK_PREFIX}{program}")))?);
    }
    for (name, _) in &contents.maps {
        removed.maps.push(remove(path.join(name))?);
    }
    drop(lock);
    removed.dir_removed = std::fs::remove_dir(path).is_ok();
    Ok(Some(removed))
}

/// Checks that `path` is a bpffs directory, takes its lock and lists the observer's pins in it.
fn open_locked(path: &Path) -> Result<(File, Contents), PinError> {
    if !is_bpffs(path) {
        return Err(PinError::NotBpffs { path: path.to_path_buf() });
    }
    if !path.is_dir() {
        let source = std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory");
        return Err(PinError::Io { action: "use as a pin directory", path: path.to_path_buf(), source });
    }
    let lock = File::open(path).map_err(|source| PinError::Io { action: "open", path: path.to_path_buf(), source })?;
    // SAFETY: flock on an fd this function owns; no memory is passed.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let source = std::io::Error::last_os_error();
        if source.kind() == std::io::ErrorKind::WouldBlock {
            return Err(PinError::InUse { dir: path.to_path_buf() });
        }
        return Err(PinError::Io { action: "lock", path: path.to_path_buf(), source });
    }
    let contents = scan(path)?;
    Ok((lock, contents))
}

/// The observer's pins in `dir`; an error naming every foreign entry if there is any.
fn scan(dir: &Path) -> Result<Contents, PinError> {
    let entries =
        std::fs::read_dir(dir).map_err(|source| PinError::Io { action: "list", path: dir.to_path_buf(), source })?;
    let mut contents = Contents::default();
    let mut foreign = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| PinError::Io { action: "list", path: dir.to_path_buf(), source })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let shown = observer_wire::printable::escaped(&name);
        let object = bpf::obj_get(&entry.path()).map_or(Object::Other, |fd| bpf::describe(fd.as_fd()));
        match (expected(&name), object) {
            (Some(Expected::Map(map)), Object::Map(layout)) => contents.maps.push((map, layout)),
            (Some(Expected::Link(program)), Object::Link { link_type, .. }) if link_type == "cgroup" => {
                contents.links.push(program);
            }
            (Some(Expected::Map(_)), _) => foreign.push(format!("{shown} (not a map)")),
            (Some(Expected::Link(_)), _) => foreign.push(format!("{shown} (not a cgroup link)")),
            (None, _) => foreign.push(shown),
        }
    }
    if foreign.is_empty() {
        Ok(contents)
    } else {
        foreign.sort();
        Err(PinError::Foreign { dir: dir.to_path_buf(), files: foreign.join(", ") })
    }
}

/// What an observer's pin of this name must be.
#[derive(Debug, PartialEq, Eq)]
enum Expected {
    Map(&'static str),
    Link(&'static str),
}

fn expected(name: &str) -> Option<Expected> {
    if let Some(map) = PINNED_MAPS.iter().find(|m| **m == name) {
        return Some(Expected::Map(map));
    }
    let program = name.strip_prefix(LINK_PREFIX)?;
    LINKED_PROGRAMS.iter().find(|p| **p == program).map(|p| Expected::Link(p))
}

/// Whether `path` is on a BPF filesystem.
pub fn is_bpffs(path: &Path) -> bool {
    super::preflight::filesystem_type(path) == Some(BPF_FS_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_observers_names_are_its_pins() {
        assert_eq!(expected("EVENTS"), Some(Expected::Map(names::EVENTS)));
        assert_eq!(expected("link_observer_sock_ops"), Some(Expected::Link(names::SOCK_OPS)));
        assert_eq!(expected("link_EVENTS"), None);
        assert_eq!(expected("observer_sock_ops"), None);
        assert_eq!(expected("events"), None);
        assert_eq!(expected(""), None);
    }

    #[test]
    fn a_directory_off_bpffs_is_refused_with_what_to_do() {
        let error = PinDir::prepare(Path::new("/tmp")).expect_err("/tmp is not bpffs");
        assert!(matches!(error, PinError::NotBpffs { .. }), "{error}");
        assert!(error.to_string().contains("mount -t bpf"), "{error}");
        let error = PinDir::prepare(Path::new("/tmp/observer-no-such-dir/pins")).expect_err("parent is not bpffs");
        assert!(matches!(error, PinError::NotBpffs { .. }), "{error}");
        assert!(!Path::new("/tmp/observer-no-such-dir").exists(), "created a directory off bpffs");
        assert!(matches!(unpin(Path::new("/tmp")), Err(PinError::NotBpffs { .. })));
        assert!(matches!(unpin(Path::new("/nonexistent/observer")), Ok(None)));
    }
}
