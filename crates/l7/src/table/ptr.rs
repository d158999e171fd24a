//! An `Arc` compared and hashed by the object it points to, not by its value: the key of what
//! a compile reuses from the previous one. Holding the `Arc` keeps the object alive, so its
//! address cannot be taken by another one while the key exists.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

pub(super) struct ByPtr<T>(pub Arc<T>);

impl<T> PartialEq for ByPtr<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<T> Eq for ByPtr<T> {}

impl<T> Hash for ByPtr<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.0), state);
    }
}
