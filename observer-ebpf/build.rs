//! Rebuild when bpf-linker changes: the object it links is embedded in the observer.
fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
