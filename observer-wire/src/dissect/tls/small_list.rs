//! A list that holds its first few entries inline and moves to the heap only past them: the
//! records of a direction and the messages of a flight are a handful on every real handshake,
//! and are listed again on every segment, so a heap list per call cost more than the listing.

use std::ops::Deref;

/// Up to `N` entries inline; more (hostile or unusual input) in a vector, all of them.
#[derive(Clone)]
pub struct SmallList<T: Copy + Default, const N: usize> {
    inline: [T; N],
    len: usize,
    /// Every entry once there are more than `N` (then `inline` is not read).
    heap: Vec<T>,
}

impl<T: Copy + Default, const N: usize> Default for SmallList<T, N> {
    fn default() -> Self {
        Self { inline: [T::default(); N], len: 0, heap: Vec::new() }
    }
}

impl<T: Copy + Default, const N: usize> SmallList<T, N> {
    pub fn push(&mut self, value: T) {
        if let Some(slot) = self.inline.get_mut(self.len)
            && self.heap.is_empty()
        {
            *slot = value;
        } else {
            if self.heap.is_empty() {
                self.heap.extend_from_slice(&self.inline);
            }
            self.heap.push(value);
        }
        self.len += 1;
    }

    /// Keep the first `len` entries.
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        self.len = len;
        if !self.heap.is_empty() {
            self.heap.truncate(len);
            if len <= N {
                self.inline[..len].copy_from_slice(&self.heap);
                self.heap.clear();
            }
        }
    }
}

impl<T: Copy + Default, const N: usize> Deref for SmallList<T, N> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        if self.heap.is_empty() { &self.inline[..self.len] } else { &self.heap }
    }
}

impl<T: Copy + Default + std::fmt::Debug, const N: usize> std::fmt::Debug for SmallList<T, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: Copy + Default + PartialEq, const N: usize> PartialEq for SmallList<T, N> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Copy + Default + Eq, const N: usize> Eq for SmallList<T, N> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_past_the_inline_ones_are_all_kept_in_order() {
        let mut list = SmallList::<u16, 3>::default();
        assert!(list.is_empty());
        for v in 0..10 {
            list.push(v);
            assert_eq!(&*list, &(0..=v).collect::<Vec<_>>()[..]);
        }
        for len in [12, 9, 4, 2, 0] {
            list.truncate(len);
            assert_eq!(&*list, &(0..len.min(10) as u16).collect::<Vec<_>>()[..]);
        }
        list.push(7);
        assert_eq!(&*list, &[7]);
    }
}
