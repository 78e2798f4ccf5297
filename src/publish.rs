//! Publishing a server's report to its readers (the status writers, the
//! status model) through a `watch` channel, waking them only when it
//! changed.

use std::sync::Arc;

use tokio::sync::watch;

/// Sends `next` on `tx` when it differs from the current value; returns
/// whether it did.
pub fn if_changed<T: PartialEq>(tx: &watch::Sender<Arc<T>>, next: T) -> bool {
    tx.send_if_modified(|current| {
        let changed = **current != next;
        if changed {
            *current = Arc::new(next);
        }
        changed
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_wake_only_for_a_new_value() {
        let (tx, mut rx) = watch::channel(Arc::new(1));
        rx.borrow_and_update();
        assert!(!if_changed(&tx, 1));
        assert!(!rx.has_changed().unwrap());
        assert!(if_changed(&tx, 2));
        assert!(rx.has_changed().unwrap());
        assert_eq!(**rx.borrow_and_update(), 2);
    }
}
