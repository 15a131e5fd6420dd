//! `kind: List` documents (what `kubectl get pods -A -o yaml` prints): the items of one kind
//! are deserialized in one pass, the others skipped, so that every item keeps its line numbers.
//! The pass records which item it was reading when it failed, so that the loader can report
//! that item's error, leave the item out and read the List again for the errors of the others.

use std::{cell::Cell, collections::BTreeSet, marker::PhantomData};

use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Which items a pass reads, and where it reports the item it is in.
#[derive(Clone, Copy)]
pub struct Selection<'w> {
    /// `items[i]` is read where `wanted[i]`; `None`: every item.
    pub wanted: Option<&'w [bool]>,
    /// Items left out (their errors are already reported).
    pub skipped: &'w BTreeSet<usize>,
    /// The index of the item being read; still set when the pass fails inside it.
    pub current: &'w Cell<Option<usize>>,
}

impl Selection<'_> {
    fn wants(&self, index: usize) -> bool {
        !self.skipped.contains(&index) && self.wanted.is_none_or(|w| w.get(index).copied().unwrap_or(false))
    }
}

/// Deserializes the selected `items[i]` as `T`, skipping the others.
struct Items<'w, T> {
    selection: Selection<'w>,
    item: PhantomData<T>,
}

impl<'de, T: DeserializeOwned> Visitor<'de> for Items<'_, T> {
    type Value = Vec<(usize, T)>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a sequence of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        for index in 0.. {
            if self.selection.wants(index) {
                self.selection.current.set(Some(index));
                match seq.next_element::<T>()? {
                    Some(item) => out.push((index, item)),
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
        }
        self.selection.current.set(None);
        Ok(out)
    }
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for Items<'_, T> {
    type Value = Vec<(usize, T)>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

/// The whole List document: only `items` is read.
pub struct ListItems<'w, T> {
    pub selection: Selection<'w>,
    pub item: PhantomData<T>,
}

impl<'de, T: DeserializeOwned> Visitor<'de> for ListItems<'_, T> {
    type Value = Vec<(usize, T)>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a List object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "items" {
                out = map.next_value_seed(Items::<T> { selection: self.selection, item: PhantomData })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for ListItems<'_, T> {
    type Value = Vec<(usize, T)>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}
