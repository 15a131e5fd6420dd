//! `kind: List` documents (what `kubectl get pods -A -o yaml` prints): the items of one kind
//! are deserialized in one pass, the others skipped, so that every item keeps its line numbers.

use std::marker::PhantomData;

use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Deserializes `items[i]` as `T` where `wanted[i]`, skipping the others.
struct Items<'w, T> {
    wanted: &'w [bool],
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
            if self.wanted.get(index).copied().unwrap_or(false) {
                match seq.next_element::<T>()? {
                    Some(item) => out.push((index, item)),
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
        }
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
    pub wanted: &'w [bool],
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
                out = map.next_value_seed(Items::<T> { wanted: self.wanted, item: PhantomData })?;
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
