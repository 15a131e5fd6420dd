//! The wire spelling of a unit enum value (`"mtls"`, `"would_break_under_strict"`) as a
//! `&'static str`, without serializing: metrics attributes, the table and alerts name values on
//! every record, and the JSON spelling (serde's renamed variant name) is the one contract.

use serde::{
    Serialize, Serializer,
    ser::{self, Impossible},
};

/// The spelling serde gives `value` if it is a unit enum variant, else `None`.
pub fn unit_name<T: Serialize + ?Sized>(value: &T) -> Option<&'static str> {
    value.serialize(UnitName).ok()
}

/// Serializes a unit variant to its name; refuses everything else.
struct UnitName;

/// Not a unit enum variant.
#[derive(Debug)]
struct NotUnit;

impl std::fmt::Display for NotUnit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a unit enum variant")
    }
}

impl std::error::Error for NotUnit {}

impl ser::Error for NotUnit {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        NotUnit
    }
}

type Refused = Result<&'static str, NotUnit>;

impl Serializer for UnitName {
    type Ok = &'static str;
    type Error = NotUnit;
    type SerializeSeq = Impossible<&'static str, NotUnit>;
    type SerializeTuple = Impossible<&'static str, NotUnit>;
    type SerializeTupleStruct = Impossible<&'static str, NotUnit>;
    type SerializeTupleVariant = Impossible<&'static str, NotUnit>;
    type SerializeMap = Impossible<&'static str, NotUnit>;
    type SerializeStruct = Impossible<&'static str, NotUnit>;
    type SerializeStructVariant = Impossible<&'static str, NotUnit>;

    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Refused {
        Ok(variant)
    }

    fn serialize_bool(self, _: bool) -> Refused {
        Err(NotUnit)
    }
    fn serialize_i8(self, _: i8) -> Refused {
        Err(NotUnit)
    }
    fn serialize_i16(self, _: i16) -> Refused {
        Err(NotUnit)
    }
    fn serialize_i32(self, _: i32) -> Refused {
        Err(NotUnit)
    }
    fn serialize_i64(self, _: i64) -> Refused {
        Err(NotUnit)
    }
    fn serialize_u8(self, _: u8) -> Refused {
        Err(NotUnit)
    }
    fn serialize_u16(self, _: u16) -> Refused {
        Err(NotUnit)
    }
    fn serialize_u32(self, _: u32) -> Refused {
        Err(NotUnit)
    }
    fn serialize_u64(self, _: u64) -> Refused {
        Err(NotUnit)
    }
    fn serialize_f32(self, _: f32) -> Refused {
        Err(NotUnit)
    }
    fn serialize_f64(self, _: f64) -> Refused {
        Err(NotUnit)
    }
    fn serialize_char(self, _: char) -> Refused {
        Err(NotUnit)
    }
    fn serialize_str(self, _: &str) -> Refused {
        Err(NotUnit)
    }
    fn serialize_bytes(self, _: &[u8]) -> Refused {
        Err(NotUnit)
    }
    fn serialize_none(self) -> Refused {
        Err(NotUnit)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Refused {
        Err(NotUnit)
    }
    fn serialize_unit(self) -> Refused {
        Err(NotUnit)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Refused {
        Err(NotUnit)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, _: &T) -> Refused {
        Err(NotUnit)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Refused {
        Err(NotUnit)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NotUnit> {
        Err(NotUnit)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, NotUnit> {
        Err(NotUnit)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, NotUnit> {
        Err(NotUnit)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotUnit> {
        Err(NotUnit)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotUnit> {
        Err(NotUnit)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, NotUnit> {
        Err(NotUnit)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotUnit> {
        Err(NotUnit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{ClientCert, Protocol, Security, UnknownReason};

    #[test]
    fn unit_variants_have_their_json_spelling_and_nothing_else_has_one() {
        for (name, json) in [
            (unit_name(&Security::Mtls), serde_json::to_string(&Security::Mtls)),
            (unit_name(&Protocol::Postgres), serde_json::to_string(&Protocol::Postgres)),
            (unit_name(&ClientCert::Presented), serde_json::to_string(&ClientCert::Presented)),
            (unit_name(&UnknownReason::HandshakeTimeout), serde_json::to_string(&UnknownReason::HandshakeTimeout)),
        ] {
            assert_eq!(name.map(|n| format!("\"{n}\"")), json.ok());
        }
        assert_eq!(unit_name("mtls"), None);
        assert_eq!(unit_name(&Some(Security::Tls)), None);
        assert_eq!(unit_name(&7u16), None);
    }
}
