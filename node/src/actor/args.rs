//! Decoding JSON arguments and inputs strictly: a field that the target struct does not declare is
//! an error naming it, where serde would silently drop it.
//!
//! serde's derived `Deserialize` skips an unknown field by deserializing its value as
//! [`IgnoredAny`](serde::de::IgnoredAny); [`from_str_strict`] decodes through a deserializer that
//! notices exactly that call, so it works for any struct without `#[serde(deny_unknown_fields)]`
//! on it. It looks into the fields of nested structs and into `Option`s, not into sequences or
//! maps; fields gathered by `#[serde(flatten)]` are never unknown.

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer as _, MapAccess, Visitor};
use serde_json::Value;

/// A field that the target type does not declare: its path (`amont`, `filter.limt`) and the
/// fields its struct declares.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Unknown {
    path: String,
    expected: &'static [&'static str],
}

/// Decodes `json` into `T`, failing on a field that `T` (or a struct inside it) does not declare:
/// `unknown field "amont"; expected amount`.
pub fn from_str_strict<T: DeserializeOwned>(json: &str) -> Result<T, serde_json::Error> {
    from_value_strict(serde_json::from_str(json)?)
}

/// [`from_str_strict`] for a parsed value.
pub fn from_value_strict<T: DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
    let mut unknown = Vec::new();
    let decoded = T::deserialize(Tracked { value, path: String::new(), parent: &[], unknown: &mut unknown })?;
    match unknown.first() {
        None => Ok(decoded),
        Some(Unknown { path, expected: [] }) => {
            Err(de::Error::custom(format!("unknown field {path:?}; it takes no fields")))
        }
        Some(Unknown { path, expected }) => {
            Err(de::Error::custom(format!("unknown field {path:?}; expected {}", expected.join(", "))))
        }
    }
}

/// A JSON value being decoded at `path`, inside a struct declaring `parent`.
struct Tracked<'u> {
    value: Value,
    path: String,
    parent: &'static [&'static str],
    unknown: &'u mut Vec<Unknown>,
}

/// The fields of a JSON object being decoded into a struct declaring `fields`.
struct TrackedMap<'u> {
    entries: serde_json::map::IntoIter,
    /// The entry whose key was just decoded, waiting for its value to be.
    pending: Option<(String, Value)>,
    path: String,
    fields: &'static [&'static str],
    unknown: &'u mut Vec<Unknown>,
}

macro_rules! forward_to_value {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, serde_json::Error> {
                self.value.$method($($arg,)* visitor)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for Tracked<'_> {
    type Error = serde_json::Error;

    forward_to_value! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, serde_json::Error> {
        if self.value.is_null() { visitor.visit_none() } else { visitor.visit_some(self) }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, serde_json::Error> {
        match self.value {
            Value::Object(object) => visitor.visit_map(TrackedMap {
                entries: object.into_iter(),
                pending: None,
                path: self.path,
                fields,
                unknown: self.unknown,
            }),
            other => other.deserialize_struct(name, fields, visitor),
        }
    }

    /// What a derived struct asks for the value of a field it does not declare.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, serde_json::Error> {
        self.unknown.push(Unknown { path: self.path, expected: self.parent });
        visitor.visit_unit()
    }
}

impl<'de> MapAccess<'de> for TrackedMap<'_> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, serde_json::Error> {
        let Some((key, value)) = self.entries.next() else { return Ok(None) };
        let deserializer: de::value::StringDeserializer<serde_json::Error> = key.clone().into_deserializer();
        let decoded = seed.deserialize(deserializer)?;
        self.pending = Some((key, value));
        Ok(Some(decoded))
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, serde_json::Error> {
        let (key, value) = self.pending.take().expect("serde asks for a value after its key");
        let path = if self.path.is_empty() { key } else { format!("{}.{key}", self.path) };
        seed.deserialize(Tracked { value, path, parent: self.fields, unknown: &mut *self.unknown })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// A struct as users write them: no `deny_unknown_fields`, defaults, an optional nested struct.
    #[derive(Debug, PartialEq, Deserialize)]
    struct Transfer {
        #[serde(default)]
        amount: i64,
        to: String,
        memo: Option<Memo>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Memo {
        text: String,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Nothing {}

    #[test]
    fn declared_fields_decode() {
        let t: Transfer = from_str_strict(r#"{"amount": 5, "to": "b", "memo": {"text": "rent"}}"#).unwrap();
        assert_eq!(t, Transfer { amount: 5, to: "b".into(), memo: Some(Memo { text: "rent".into() }) });
        let t: Transfer = from_str_strict(r#"{"to": "b", "memo": null}"#).unwrap();
        assert_eq!(t.amount, 0);
        let n: Option<i64> = from_str_strict("null").unwrap();
        assert_eq!(n, None);
        let v: Vec<i64> = from_str_strict("[1, 2]").unwrap();
        assert_eq!(v, [1, 2]);
    }

    #[test]
    fn an_unknown_field_is_named() {
        let e = from_str_strict::<Transfer>(r#"{"amont": 5, "to": "b"}"#).unwrap_err();
        assert_eq!(e.to_string(), r#"unknown field "amont"; expected amount, to, memo"#);
        let e = from_str_strict::<Transfer>(r#"{"to": "b", "memo": {"txt": "x", "text": "y"}}"#).unwrap_err();
        assert_eq!(e.to_string(), r#"unknown field "memo.txt"; expected text"#);
        let e = from_str_strict::<Nothing>(r#"{"x": 1}"#).unwrap_err();
        assert_eq!(e.to_string(), r#"unknown field "x"; it takes no fields"#);
        // serde's own errors are unchanged.
        let e = from_str_strict::<Transfer>(r#"{"amount": 5}"#).unwrap_err();
        assert_eq!(e.to_string(), "missing field `to`");
    }
}
