//! A process-wide table of objects named by integer handles, as the C ABI hands them out (sessions,
//! cancellation tokens). Handles start at 1 and are never reused, so a stale or made-up handle is found
//! missing instead of naming another object; 0 is never a handle.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

pub struct HandleTable<T> {
    next: AtomicU64,
    entries: Mutex<BTreeMap<u64, Arc<T>>>,
}

impl<T> HandleTable<T> {
    pub const fn new() -> Self {
        HandleTable {
            next: AtomicU64::new(1),
            entries: Mutex::new(BTreeMap::new()),
        }
    }

    fn entries(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<T>>> {
        // Only map operations run under the lock, so a panic never happens while it is held; recover from
        // poisoning anyway, so that one bug cannot disable every later call.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores `value` under a new handle and returns the handle.
    pub fn insert(&self, value: T) -> u64 {
        let handle = self.next.fetch_add(1, Ordering::Relaxed);
        self.entries().insert(handle, Arc::new(value));
        handle
    }

    pub fn get(&self, handle: u64) -> Option<Arc<T>> {
        self.entries().get(&handle).cloned()
    }

    pub fn remove(&self, handle: u64) -> Option<Arc<T>> {
        self.entries().remove(&handle)
    }

    /// Every entry, by ascending handle.
    pub fn all(&self) -> Vec<(u64, Arc<T>)> {
        self.entries()
            .iter()
            .map(|(handle, value)| (*handle, Arc::clone(value)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::HandleTable;

    #[test]
    fn handles_start_at_one_and_are_never_reused() {
        let table = HandleTable::new();
        let a = table.insert("a");
        let b = table.insert("b");
        assert_eq!((a, b), (1, 2));
        assert_eq!(table.remove(a).as_deref(), Some(&"a"));
        assert!(table.get(a).is_none());
        assert_eq!(table.insert("c"), 3);
        let handles: Vec<u64> = table.all().into_iter().map(|(h, _)| h).collect();
        assert_eq!(handles, [2, 3]);
    }
}
