//! The items of a `kind: List` document, every bad item's error reported: a pass that fails
//! inside an item reports that error (with its field path, `items[3].spec.mtls.mode`), then
//! goes on past it, as a single document does: the value at fault is blanked when it is one
//! line, else the item is left out, and the List is read again. Bounded: at most
//! [`MAX_ERRORS_PER_DOCUMENT`] errors are reported per List, the items with errors past that
//! are counted (within [`MAX_LIST_PASSES`] readings) and named as a number.

use std::{borrow::Cow, cell::Cell, collections::BTreeSet, marker::PhantomData, path::Path};

use serde::de::{DeserializeOwned, DeserializeSeed};

use super::{LoadErrorKind, Loader, MAX_ERRORS_PER_DOCUMENT};
use crate::manifest::{
    blank_value, is_value_error,
    list::{ListItems, Selection},
};

/// Most readings of one List per pass (its headers, then each kind): every reading goes past
/// one error, and each is linear in the document, so a List of thousands of bad items costs a
/// bounded multiple of one reading.
const MAX_LIST_PASSES: usize = 4 * MAX_ERRORS_PER_DOCUMENT;

/// The errors of the List being loaded, over all its passes.
#[derive(Debug, Default)]
pub(super) struct ListErrors {
    /// Errors reported so far.
    reported: usize,
    /// Errors found past the cap (each the first of an item), counted, not reported.
    unreported: usize,
    /// A pass ran out of readings: there may be more than `unreported`.
    at_least: bool,
}

impl ListErrors {
    /// The error naming what was not reported, if anything was not.
    pub(super) fn not_shown(&self) -> Option<LoadErrorKind> {
        (self.unreported > 0 || self.at_least).then(|| LoadErrorKind::ListErrorsNotShown {
            count: self.unreported.max(1),
            at_least: self.at_least,
            shown: self.reported,
        })
    }
}

impl Loader {
    /// The selected items of the List `text` as `T` (every item when `wanted` is `None`),
    /// reporting the error of every item that does not read as `T`; those items are left out.
    pub(super) fn list_items<T: DeserializeOwned>(
        &mut self,
        file: &Path,
        text: &str,
        offset: u32,
        wanted: Option<&[bool]>,
    ) -> Vec<(usize, T)> {
        let mut skipped = BTreeSet::new();
        let mut patched = Cow::Borrowed(text);
        let mut last_blanked = None;
        for _ in 0..MAX_LIST_PASSES {
            let current = Cell::new(None);
            let selection = Selection { wanted, skipped: &skipped, current: &current };
            let seed = ListItems::<T> { selection, item: PhantomData };
            let error = match serde_saphyr::with_deserializer_from_str(&patched, |de| seed.deserialize(de)) {
                Ok(items) => return items,
                Err(e) => e,
            };
            let here = error.location().map(|l| (l.line(), l.column()));
            let item = current.get();
            // The same place again after blanking it: `null` is no better there, no new error.
            let repeated = here.is_some() && here == last_blanked;
            let under_cap = self.list_errors.reported < MAX_ERRORS_PER_DOCUMENT;
            if !repeated {
                if under_cap {
                    self.yaml_error(file, &patched, offset, &error, item);
                    self.list_errors.reported += 1;
                } else {
                    self.list_errors.unreported += 1;
                }
            }
            // Past the cap only items are counted: no blanking for more errors of one item.
            if !repeated
                && under_cap
                && is_value_error(&error)
                && let Some(next) = here.and_then(|(line, column)| {
                    blank_value(&patched, usize::try_from(line).ok()?, usize::try_from(column).ok()?)
                })
            {
                patched = Cow::Owned(next);
                last_blanked = here;
                continue;
            }
            match item {
                Some(index) if skipped.insert(index) => last_blanked = None,
                // Outside any item (`items` itself is wrong), or no progress: nothing more to read.
                _ => return Vec::new(),
            }
        }
        self.list_errors.at_least = true;
        Vec::new()
    }
}
