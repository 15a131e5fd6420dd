//! `observer.policy.reloads` counts what the store did: applied and rejected reloads, not the
//! polls that found nothing new.

use observer::reload::{ConfigSource, PolicyStore, ReloadOutcome};
use observer_mesh::{Mesh, load::LoadErrors};

/// Answers a scripted sequence of polls.
struct Script(Vec<Result<Option<Mesh>, LoadErrors>>);

impl ConfigSource for Script {
    fn poll(&mut self) -> Result<Option<Mesh>, LoadErrors> {
        if self.0.is_empty() { Ok(None) } else { self.0.remove(0) }
    }
}

#[test]
fn applied_and_rejected_reloads_are_counted() {
    let store = PolicyStore::embedded_default();
    let mut source =
        Script(vec![Ok(Some(Mesh::default())), Ok(None), Err(LoadErrors(Vec::new())), Ok(Some(Mesh::default()))]);
    assert!(matches!(store.reload_from(&mut source), ReloadOutcome::Reloaded));
    assert!(matches!(store.reload_from(&mut source), ReloadOutcome::Unchanged));
    assert!(matches!(store.reload_from(&mut source), ReloadOutcome::Rejected(_)));
    assert!(matches!(store.reload_from(&mut source), ReloadOutcome::Reloaded));
    assert!(matches!(store.reload_from(&mut source), ReloadOutcome::Unchanged));
    assert_eq!(store.reload_counts(), (2, 1));
}
