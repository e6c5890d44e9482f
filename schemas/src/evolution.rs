//! Schema evolution: a newer version may only ADD OPTIONAL fields.
//!
//! Why: events of every version live side by side in the stream, the lake (one table per event
//! type, typed by the latest version) and the aggregates (keyed by dimensions). A removed field
//! or a type change breaks the table's columns; a newly required field, or a changed
//! dimension/measure/identity, makes old and new events disagree on what they aggregate.

use crate::registry::{Registry, SchemaVersion};

/// Checks that `new` is a compatible successor of `old`. On failure, one message per problem.
///
/// Incompatible: a field removed, a field's type changed, an optional field made required, a
/// new field that is required, a change to the dimensions, the measure or the identity.
/// Allowed: new optional fields (and changes to constraints, descriptions and field order).
pub fn check_compatible(old: &SchemaVersion, new: &SchemaVersion) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    for o in &old.fields {
        match new.field(&o.name) {
            None => problems.push(format!("field `{}` was removed", o.name)),
            Some(n) => {
                if n.kind != o.kind {
                    problems.push(format!("field `{}` changed type from {} to {}", o.name, o.kind, n.kind));
                }
                if n.required && !o.required {
                    problems.push(format!("field `{}` became required", o.name));
                }
            }
        }
    }
    for n in &new.fields {
        if n.required && old.field(&n.name).is_none() {
            problems.push(format!("new field `{}` is required (a new field must be optional)", n.name));
        }
    }
    if old.dimensions != new.dimensions {
        problems.push(format!(
            "dimensions changed from [{}] to [{}]",
            old.dimensions.join(", "),
            new.dimensions.join(", ")
        ));
    }
    if old.measure != new.measure {
        problems.push(format!("measure changed from {} to {}", or_none(&old.measure), or_none(&new.measure)));
    }
    if old.identity != new.identity {
        problems.push(format!("identity changed from {} to {}", or_none(&old.identity), or_none(&new.identity)));
    }
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

fn or_none(name: &Option<String>) -> String {
    name.as_deref().map_or_else(|| "none".to_owned(), |n| format!("`{n}`"))
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
