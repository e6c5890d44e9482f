//! [`FieldPath`]: where a role (dimension, measure, identity) sits in an event's `data`.

use std::fmt;

use serde_json::{Map, Value};

/// A path to a field of `data` through nested objects: `country` (top level) or
/// `context/country` (the `country` field of the `context` object). Written in
/// `x-sluice-dimensions`, `x-sluice-measure` and `x-sluice-identity` either so or as a JSON
/// pointer (`/context/country`); both name the same path. Displays as `context/country`.
///
/// Its [`name`](FieldPath::name) (the last segment) is what queries and answers call the role:
/// `group_by=country`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath {
    /// The display form, `context/country`.
    text: String,
    segments: Vec<String>,
}

impl FieldPath {
    /// Parses `context/country` or `/context/country`. Every segment must be non-empty; what
    /// each names is checked against the schema by the registry.
    pub fn parse(text: &str) -> Result<FieldPath, String> {
        let body = text.strip_prefix('/').unwrap_or(text);
        let segments: Vec<String> = body.split('/').map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            return Err(format!("`{text}` is not a field path (write `field` or `object/field`)"));
        }
        Ok(FieldPath { text: body.to_owned(), segments })
    }

    /// The top-level field `name`.
    pub fn top(name: impl Into<String>) -> FieldPath {
        let name = name.into();
        FieldPath { text: name.clone(), segments: vec![name] }
    }

    /// The display form: `country`, `context/country`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The field names from `data` down, never empty.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The last segment: the role's name in queries, answers and the aggregate keys' labels.
    pub fn name(&self) -> &str {
        self.segments.last().map_or("", String::as_str)
    }

    /// The path as the lake's column path: `context.country` (Parquet, Athena, DataFusion).
    pub fn column_path(&self) -> String {
        self.segments.join(".")
    }

    /// The path as a JSON pointer below `data`: `/context/country`.
    pub fn pointer(&self) -> String {
        self.segments.iter().map(|s| format!("/{s}")).collect()
    }

    /// The value at this path in `data`, if every object on the way and the field are present.
    pub fn get<'a>(&self, data: &'a Map<String, Value>) -> Option<&'a Value> {
        let (last, parents) = self.segments.split_last()?;
        let mut map = data;
        for segment in parents {
            map = map.get(segment)?.as_object()?;
        }
        map.get(last)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl serde::Serialize for FieldPath {
    /// As its display form, `context/country`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl PartialEq<str> for FieldPath {
    /// Equal to the path's display form (`country`, `context/country`).
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

impl PartialEq<&str> for FieldPath {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_spellings_name_one_path() {
        let a = FieldPath::parse("context/country").unwrap();
        assert_eq!(a, FieldPath::parse("/context/country").unwrap());
        assert_eq!(a.to_string(), "context/country");
        assert_eq!(a.name(), "country");
        assert_eq!(a.column_path(), "context.country");
        assert_eq!(a.pointer(), "/context/country");
        assert!(a == *"context/country" && a != *"context" && a != *"context/countryx");
        assert_eq!(FieldPath::parse("country").unwrap(), FieldPath::top("country"));
        for bad in ["", "/", "a//b", "a/", "//a"] {
            assert!(FieldPath::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn get_walks_objects() {
        let data = json!({"context": {"country": "US"}, "n": 1});
        let data = data.as_object().unwrap();
        assert_eq!(FieldPath::parse("context/country").unwrap().get(data), Some(&json!("US")));
        assert_eq!(FieldPath::parse("n").unwrap().get(data), Some(&json!(1)));
        assert_eq!(FieldPath::parse("n/x").unwrap().get(data), None);
        assert_eq!(FieldPath::parse("context/city").unwrap().get(data), None);
    }
}
