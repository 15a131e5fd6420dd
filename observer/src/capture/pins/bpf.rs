//! The few bpf(2) commands pinning needs that aya keeps private: opening a pinned object
//! (`BPF_OBJ_GET`), swapping the program of a link in place (`BPF_LINK_UPDATE`), and telling a
//! map from a link by its `/proc/self/fdinfo` entry.

use std::{
    ffi::CString,
    os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
    path::Path,
};

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_LINK_UPDATE: libc::c_long = 29;

/// `union bpf_attr` as `BPF_OBJ_GET` reads it (the kernel zero-fills the fields past `size`).
#[repr(C)]
struct ObjGetAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

/// `union bpf_attr` as `BPF_LINK_UPDATE` reads it.
#[repr(C)]
struct LinkUpdateAttr {
    link_fd: u32,
    new_prog_fd: u32,
    flags: u32,
    old_prog_fd: u32,
}

fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: attr points at a live, initialised #[repr(C)] prefix of union bpf_attr of the
    // size passed; the kernel reads no more than that size.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, std::ptr::from_mut(attr), size_of::<T>()) };
    if rc < 0 { Err(std::io::Error::last_os_error()) } else { Ok(rc) }
}

/// Opens the BPF object pinned at `path` (map, program or link).
pub fn obj_get(path: &Path) -> std::io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt as _;
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let mut attr = ObjGetAttr { pathname: c_path.as_ptr() as u64, bpf_fd: 0, file_flags: 0 };
    let fd = sys_bpf(BPF_OBJ_GET, &mut attr)?;
    let fd = i32::try_from(fd).map_err(|_| std::io::Error::other("BPF_OBJ_GET returned an out-of-range fd"))?;
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes `link` run `program` from now on: one atomic swap, the hook never runs neither.
pub fn link_update(link: BorrowedFd<'_>, program: BorrowedFd<'_>) -> std::io::Result<()> {
    let as_u32 = |fd: BorrowedFd<'_>| u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX);
    let mut attr = LinkUpdateAttr { link_fd: as_u32(link), new_prog_fd: as_u32(program), flags: 0, old_prog_fd: 0 };
    sys_bpf(BPF_LINK_UPDATE, &mut attr).map(|_| ())
}

/// What a BPF fd refers to, from its fdinfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Object {
    Map(MapLayout),
    /// A link, with its `link_type` (`cgroup` for the observer's) and, for a cgroup link, the
    /// id of the cgroup it is attached at.
    Link {
        link_type: String,
        prog_id: u32,
        cgroup_id: Option<u64>,
    },
    Program,
    /// Not a BPF object the kernel describes (or fdinfo could not be read).
    Other,
}

/// The parts of a map's definition that decide whether a program built for one layout can use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapLayout {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

impl std::fmt::Display for MapLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "type {} key {} B value {} B entries {}",
            self.map_type, self.key_size, self.value_size, self.max_entries
        )
    }
}

/// Describes the BPF object behind `fd`.
pub fn describe(fd: BorrowedFd<'_>) -> Object {
    let path = format!("/proc/self/fdinfo/{}", fd.as_raw_fd());
    std::fs::read_to_string(path).map_or(Object::Other, |info| parse_fdinfo(&info))
}

/// Parses an fdinfo text: maps show `map_type:`, links `link_type:`, programs `prog_type:`.
pub fn parse_fdinfo(info: &str) -> Object {
    let field = |key: &str| {
        info.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix(':').map(str::trim).map(str::to_owned))
    };
    let number = |key: &str| field(key).and_then(|v| v.parse::<u32>().ok());
    if let Some(link_type) = field("link_type") {
        let cgroup_id = field("cgroup_id").and_then(|v| v.parse::<u64>().ok());
        return Object::Link { link_type, prog_id: number("prog_id").unwrap_or(0), cgroup_id };
    }
    if let (Some(map_type), Some(key_size), Some(value_size), Some(max_entries)) =
        (number("map_type"), number("key_size"), number("value_size"), number("max_entries"))
    {
        return Object::Map(MapLayout { map_type, key_size, value_size, max_entries });
    }
    if field("prog_type").is_some() { Object::Program } else { Object::Other }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdinfo_of_a_map_a_link_and_a_file() {
        let map = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1\nmap_type:\t9\nkey_size:\t8\nvalue_size:\t16\nmax_entries:\t65536\nmap_flags:\t0x0\n";
        assert_eq!(
            parse_fdinfo(map),
            Object::Map(MapLayout { map_type: 9, key_size: 8, value_size: 16, max_entries: 65536 })
        );
        let link = "pos:\t0\nflags:\t02000000\nlink_type:\tcgroup\nlink_id:\t7\nprog_tag:\tab\nprog_id:\t42\ncgroup_id:\t1\nattach_type:\t3\n";
        assert_eq!(parse_fdinfo(link), Object::Link { link_type: "cgroup".into(), prog_id: 42, cgroup_id: Some(1) });
        assert_eq!(parse_fdinfo("pos:\t0\nflags:\t02\nmnt_id:\t3\n"), Object::Other);
        assert_eq!(parse_fdinfo("prog_type:\t3\nprog_jited:\t1\n"), Object::Program);
    }
}
