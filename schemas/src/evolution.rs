//! Schema evolution: a newer version may only ADD OPTIONAL fields (at any depth).
//!
//! Why: events of every version live side by side in the stream, the lake (one table per event
//! type, typed by the latest version) and the aggregates (keyed by dimensions). A removed field
//! or a type change breaks the table's columns; a newly required field, or a changed
//! dimension/measure/identity, makes old and new events disagree on what they aggregate.

use crate::path::FieldPath;
use crate::registry::{FieldDef, Registry, SchemaVersion};

/// Checks that `new` is a compatible successor of `old`. On failure, one message per problem.
///
/// Incompatible, at any depth (inside nested objects and array items too): a field removed, a
/// field's type changed (including `string` <-> `date-time`), an optional field made required, a
/// nullable field made non-nullable, a new field that is required (inside an object that
/// already existed), a change to the dimensions, the measure or the identity.
/// Allowed: new optional fields anywhere (a new optional object may require its own fields),
/// a field made nullable, changes to constraints, descriptions and field order.
pub fn check_compatible(old: &SchemaVersion, new: &SchemaVersion) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    compare_fields("", &old.fields, &new.fields, &mut problems);
    let names = |paths: &[FieldPath]| paths.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    if old.dimensions != new.dimensions {
        problems.push(format!("dimensions changed from [{}] to [{}]", names(&old.dimensions), names(&new.dimensions)));
    }
    if old.measure != new.measure {
        problems.push(format!("measure changed from {} to {}", or_none(&old.measure), or_none(&new.measure)));
    }
    if old.identity != new.identity {
        problems.push(format!("identity changed from {} to {}", or_none(&old.identity), or_none(&new.identity)));
    }
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

/// The problems between an object's fields in `old` and in `new`; `at` is the object's label
/// (`""` for `data`, `context`, `items[]`).
fn compare_fields(at: &str, old: &[FieldDef], new: &[FieldDef], problems: &mut Vec<String>) {
    let label = |name: &str| if at.is_empty() { name.to_owned() } else { format!("{at}/{name}") };
    for o in old {
        match new.iter().find(|n| n.name == o.name) {
            None => problems.push(format!("field `{}` was removed", label(&o.name))),
            Some(n) => {
                if n.required && !o.required {
                    problems.push(format!("field `{}` became required", label(&o.name)));
                }
                compare_field(&label(&o.name), o, n, problems);
            }
        }
    }
    for n in new {
        if n.required && !old.iter().any(|o| o.name == n.name) {
            problems.push(format!("new field `{}` is required (a new field must be optional)", label(&n.name)));
        }
    }
}

/// The problems between one field's `old` and `new` definitions at `label` (their type,
/// nullability and what they hold).
fn compare_field(label: &str, old: &FieldDef, new: &FieldDef, problems: &mut Vec<String>) {
    if new.kind != old.kind {
        problems.push(format!("field `{label}` changed type from {} to {}", old.kind, new.kind));
        return;
    }
    if old.nullable && !new.nullable {
        problems.push(format!("field `{label}` is no longer nullable"));
    }
    match (old.items.as_deref(), new.items.as_deref()) {
        (Some(o), Some(n)) => compare_field(&format!("{label}[]"), o, n, problems),
        _ => compare_fields(label, &old.fields, &new.fields, problems),
    }
}

fn or_none(name: &Option<FieldPath>) -> String {
    name.as_ref().map_or_else(|| "none".to_owned(), |n| format!("`{n}`"))
}

impl Registry {
    /// Runs [`check_compatible`] over every consecutive version pair of every event type.
    /// Messages are prefixed `"<event_type> v<N> -> v<N+1>: "`.
    pub fn check_evolution(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        for t in self.event_types() {
            let versions: Vec<&SchemaVersion> = t.versions.values().collect();
            for pair in versions.windows(2) {
                if let [old, new] = pair
                    && let Err(found) = check_compatible(old, new)
                {
                    problems.extend(
                        found.into_iter().map(|p| format!("{} v{} -> v{}: {p}", t.name, old.version, new.version)),
                    );
                }
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}
