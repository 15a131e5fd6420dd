//! Raw serde types every manifest shares: the header each document is read as first, its
//! metadata, label selectors, and ConfigMaps. Kind-specific raw types live with their kind.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

/// What every document is read as first, to decide what it is.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawHeader {
    pub api_version: Option<Spanned<String>>,
    pub kind: Option<Spanned<String>>,
    #[serde(default)]
    pub metadata: RawMeta,
}

/// `metadata` of any object.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawMeta {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub creation_timestamp: Option<Spanned<String>>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// `selector` / `workloadSelector`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawSelector {
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawConfigMap {
    pub metadata: RawMeta,
    pub data: BTreeMap<String, Spanned<String>>,
}
