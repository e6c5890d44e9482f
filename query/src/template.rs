//! The generated Glue block of template.yaml (pure text handling; the `gen-glue` binary does the
//! file I/O).
//!
//! The block sits under `Resources:` between two marker lines, [`BEGIN_MARKER`] and
//! [`END_MARKER`]; everything outside the markers belongs to other people and is never changed.
//! [`render`] regenerates the block from the registry, [`check`] reports whether the checked-in
//! block is current.

use sluice_schemas::Registry;

use crate::athena::{AthenaError, LakeBucket, glue_resources_yaml};

/// First line of the generated block (two-space indent, under `Resources:`).
pub const BEGIN_MARKER: &str = "  # BEGIN generated: glue tables (sluice-query gen-glue)";
/// Last line of the generated block.
pub const END_MARKER: &str = "  # END generated: glue tables";
/// The command that regenerates the block.
pub const REGENERATE_COMMAND: &str = "cargo run -p sluice-query --bin gen-glue";

const NOTICE: &str = "  # Do not edit: generated from schemas/ by `cargo run -p sluice-query --bin gen-glue`.";

/// Why the template could not be updated. Fix the template by hand, then run again.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    /// The markers are duplicated, out of order, or only one of them is present.
    #[error("template.yaml: {0}")]
    Markers(String),
    /// No top-level `Resources:` line to put a new block under.
    #[error("template.yaml has no top-level `Resources:` section")]
    NoResources,
    /// The Glue definitions could not be generated from the schemas.
    #[error(transparent)]
    Schemas(#[from] AthenaError),
}

/// Where the block is in a template.
enum Block {
    /// Line indexes of the BEGIN and END markers.
    Present { begin: usize, end: usize },
    /// No markers yet: insert before this line index (end of the Resources section).
    Missing { insert_at: usize },
}

fn locate(lines: &[&str]) -> Result<Block, TemplateError> {
    let find = |marker: &str| -> Vec<usize> {
        lines.iter().enumerate().filter(|(_, l)| l.trim_end() == marker).map(|(i, _)| i).collect()
    };
    let begins = find(BEGIN_MARKER);
    let ends = find(END_MARKER);
    match (begins.as_slice(), ends.as_slice()) {
        ([begin], [end]) if begin < end => Ok(Block::Present { begin: *begin, end: *end }),
        ([], []) => {
            let resources =
                lines.iter().position(|l| l.trim_end() == "Resources:").ok_or(TemplateError::NoResources)?;
            // The section ends at the next top-level key (not indented, not a comment).
            let next_key = lines[resources + 1..]
                .iter()
                .position(|l| !l.is_empty() && !l.starts_with([' ', '#', '\t']))
                .map_or(lines.len(), |offset| resources + 1 + offset);
            // Keep blank lines that separate the section from the next key after the block.
            let mut insert_at = next_key;
            while insert_at > resources + 1 && lines[insert_at - 1].trim().is_empty() {
                insert_at -= 1;
            }
            Ok(Block::Missing { insert_at })
        }
        _ => Err(TemplateError::Markers(format!(
            "expected exactly one `{}` line followed by one `{}` line",
            BEGIN_MARKER.trim(),
            END_MARKER.trim()
        ))),
    }
}

/// True when a `LakeBucket` resource or parameter is defined outside the generated block.
fn lake_bucket_defined_outside(lines: &[&str], block: &Block) -> bool {
    lines.iter().enumerate().any(|(i, line)| {
        let inside = matches!(block, Block::Present { begin, end } if (*begin..=*end).contains(&i));
        !inside && line.trim_end() == "  LakeBucket:"
    })
}

/// The block's lines between the markers, as the generator writes them.
fn block_body(registry: &Registry, bucket: LakeBucket) -> Result<String, TemplateError> {
    Ok(format!("{NOTICE}\n{}", glue_resources_yaml(registry, bucket)?))
}

/// `template` with the generated block replaced (or inserted at the end of `Resources:` when the
/// markers are missing). Idempotent: `render(render(t)) == render(t)`. Defines the
/// `LakeBucket` resource inside the block only when the rest of the template does not define a
/// `LakeBucket` (resource or parameter) itself.
pub fn render(template: &str, registry: &Registry) -> Result<String, TemplateError> {
    let lines: Vec<&str> = template.lines().collect();
    let block = locate(&lines)?;
    let bucket = if lake_bucket_defined_outside(&lines, &block) { LakeBucket::Existing } else { LakeBucket::Define };
    let body = block_body(registry, bucket)?;
    let (before, after): (&[&str], &[&str]) = match block {
        Block::Present { begin, end } => (&lines[..begin], &lines[end + 1..]),
        Block::Missing { insert_at } => (&lines[..insert_at], &lines[insert_at..]),
    };
    let mut out = String::with_capacity(template.len() + body.len() + 200);
    for line in before {
        out.push_str(line);
        out.push('\n');
    }
    if matches!(block, Block::Missing { .. }) && before.last().is_some_and(|l| !l.trim().is_empty()) {
        out.push('\n');
    }
    out.push_str(BEGIN_MARKER);
    out.push('\n');
    out.push_str(&body);
    out.push_str(END_MARKER);
    out.push('\n');
    if matches!(block, Block::Missing { .. }) && after.first().is_some_and(|l| !l.trim().is_empty()) {
        out.push('\n');
    }
    for line in after {
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}

/// Whether the checked-in block is current.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    UpToDate,
    /// The block differs from (or is missing compared to) what [`render`] produces.
    Stale,
}

/// Compares `template` with [`render`]`(template)`.
pub fn check(template: &str, registry: &Registry) -> Result<Check, TemplateError> {
    Ok(if render(template, registry)? == template { Check::UpToDate } else { Check::Stale })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    const BASE: &str = "Parameters:\n  Stage:\n    Type: String\n\nResources:\n  EventStream:\n    Type: AWS::Kinesis::Stream\n\nOutputs:\n  X:\n    Value: y\n";

    fn registry() -> Registry {
        Registry::builtin().unwrap()
    }

    #[test]
    fn inserts_the_block_at_the_end_of_resources() {
        let out = render(BASE, &registry()).unwrap();
        let begin = out.find(BEGIN_MARKER).unwrap();
        let end = out.find(END_MARKER).unwrap();
        assert!(out[..begin].ends_with("    Type: AWS::Kinesis::Stream\n\n"), "{out}");
        assert!(out[end..].starts_with(&format!("{END_MARKER}\n\nOutputs:\n")), "{out}");
        assert!(out[begin..end].contains("  LakeBucket:\n    Type: AWS::S3::Bucket"));
        assert_eq!(check(&out, &registry()).unwrap(), Check::UpToDate);
        assert_eq!(check(BASE, &registry()).unwrap(), Check::Stale);
    }

    #[test]
    fn render_is_idempotent_and_keeps_the_rest() {
        let once = render(BASE, &registry()).unwrap();
        let twice = render(&once, &registry()).unwrap();
        assert_eq!(once, twice);
        let stripped: String = {
            let begin = once.find(BEGIN_MARKER).unwrap();
            let end = once.find(END_MARKER).unwrap() + END_MARKER.len() + 2;
            format!("{}{}", &once[..begin], &once[end..])
        };
        assert_eq!(stripped, BASE);
    }

    #[test]
    fn replaces_a_stale_block() {
        let stale = BASE.replace(
            "\nOutputs:",
            &format!("{BEGIN_MARKER}\n  Old:\n    Type: AWS::Glue::Table\n{END_MARKER}\n\nOutputs:"),
        );
        assert_eq!(check(&stale, &registry()).unwrap(), Check::Stale);
        let out = render(&stale, &registry()).unwrap();
        assert!(!out.contains("  Old:"));
        assert_eq!(check(&out, &registry()).unwrap(), Check::UpToDate);
    }

    #[test]
    fn references_a_lake_bucket_defined_elsewhere() {
        let with_bucket = BASE.replace("Resources:\n", "Resources:\n  LakeBucket:\n    Type: AWS::S3::Bucket\n");
        let out = render(&with_bucket, &registry()).unwrap();
        assert_eq!(out.matches("  LakeBucket:\n").count(), 1);
        assert!(out.contains("!Sub \"s3://${LakeBucket}/events/event_type=page_view/\""));
    }

    proptest::proptest! {
        #[test]
        fn render_is_idempotent_around_arbitrary_resources(
            before in proptest::collection::vec("  [A-Za-z]{1,8}:( [a-z]{0,5})?|    [a-z: ]{0,12}|", 0..6),
            after in proptest::collection::vec("[A-Z][a-z]{0,8}:|  [a-z: ]{0,12}|# [a-z ]{0,10}", 0..6),
        ) {
            let template = format!(
                "Resources:\n{}{}",
                before.iter().map(|l| format!("{l}\n")).collect::<String>(),
                after.iter().map(|l| format!("{l}\n")).collect::<String>(),
            );
            let registry = registry();
            let once = render(&template, &registry).unwrap();
            proptest::prop_assert_eq!(&render(&once, &registry).unwrap(), &once);
            proptest::prop_assert_eq!(check(&once, &registry).unwrap(), Check::UpToDate);
            proptest::prop_assert_eq!(once.matches(BEGIN_MARKER).count(), 1);
        }
    }

    #[test]
    fn bad_markers_are_refused() {
        let only_begin = BASE.replace("\nOutputs:", &format!("{BEGIN_MARKER}\n\nOutputs:"));
        let reversed = BASE.replace("\nOutputs:", &format!("{END_MARKER}\n{BEGIN_MARKER}\n\nOutputs:"));
        for template in [only_begin, reversed] {
            assert!(matches!(render(&template, &registry()), Err(TemplateError::Markers(_))));
        }
        assert_eq!(render("Outputs: {}\n", &registry()), Err(TemplateError::NoResources));
    }
}
